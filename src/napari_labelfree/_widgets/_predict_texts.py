"""What the Predict widget says to people: its tooltips and placeholder (kept apart from the logic)."""

UNKNOWN_VOXEL = "unknown, please enter Z, Y, X in um"

TOOLTIPS = {
    "image": "The transmitted-light z-stack to predict from (a layer that looks like "
    "fluorescence or is a prediction is never chosen for you, and Predict warns once before using "
    "it)",
    "channel": "Which channel of a multi-channel layer is transmitted light",
    "every_scene": "Predict this scene, then the same channel of the file's other scenes",
    "voxel_size": "Voxel size of the image, Z, Y, X in micrometres (not nm). Taken from the "
    "layer's scale; entering it (Enter) checks it and sets the layer's scale. Images are "
    "resampled to each model's.",
    "force": "Go ahead even when the voxel sizes mean resampling by more than 20x on an axis or "
    "more than the machine's memory (usually a voxel size in the wrong unit)",
    "device": "Where to compute: auto takes a GPU when there is one",
    "tile": "Largest tile in voxels at the model's voxel size; auto fits it to the device "
    "(a CPU cuts large frames into a few tiles so Cancel acts quickly)",
    "tta": "Test-time augmentation: average the predictions of the image flipped and rotated in "
    "Y, X (8 passes) or also flipped in Z (16 passes); that many times slower, often a little "
    "closer to the real fluorescence",
    "overlap": "Fraction of a tile shared with its neighbours (seams blend away)",
    "predict_btn": "Predict the ticked structures; the frame on screen comes first",
    "cancel_btn": "Stop after the current tile; finished frames stay",
    "save_merged": "Save the visible overlays on the shown plane as one RGB image (PNG or TIFF)",
}

"""napari-labelfree: predict fluorescence of cell structures from transmitted-light z-stacks.

Method: Ounkomol et al., "Label-free prediction of three-dimensional fluorescence images from
transmitted-light microscopy", Nature Methods 15, 917-920 (2018).
"""

__version__ = "0.1.0"

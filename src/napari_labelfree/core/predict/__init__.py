"""The prediction job, one module per step; each imports only the ones listed before it.

Read bottom up, in the order the data flows (tests/core/test_predict_imports.py holds the order):

1. ``stages``       a long step of a frame (read, z-score, resampling) said while it runs
2. ``compile_cache`` per-machine cache of ``torch.compile`` artifacts (opt-in acceleration)
3. ``fast_tiles``   the network on fixed tile shapes: cuDNN autotuning, compile, CUDA graphs
4. ``pipeline``     host tiles and frames double-buffered to a GPU
5. ``tiling``       tile plan, blending window and stitching (pure, MONAI-shaped sliding window)
6. ``tile_advice``  tile sizes for an interactive user (tiny tiles raised, CPU frames cut)
7. ``tta``          test-time augmentation: flipped and rotated copies of each tile, averaged
8. ``schedule``     which time point next: the one under the time slider first
9. ``volume``       the per-volume engine: z-score, resample, tile, predict, stitch, resample back
10. ``plan``         validate once: :func:`plan.plan_prediction` makes a :class:`plan.PredictionPlan`
                    that predicts any iterable of frames, yielding events
11. ``run``         one-call shorthands: ``iter_predict``, ``iter_predict_volume``,
                    ``iter_predict_scheduled``
12. ``blocks``      one frame cut into Z-Y-X blocks predicted apart, equal to the whole frame
13. ``dask_cluster`` Dask clusters: a scheduler's address checked, a local cluster started
14. ``dask_worker`` a Dask worker's side: the task, the models and plans it keeps
15. ``distributed`` Dask: one task per (input, time point) or block, each writing its own region

Nothing is re-exported here: import each name from its module, so the import says where it lives
(and importing one step never loads the steps above it).
"""

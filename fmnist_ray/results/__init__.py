"""A sweep's results folder: storage paths, the Parquet exports, Ray's own files, trial
outcomes and the checks made before a run writes there."""

"""Data between stages: the .npz dataset contract, the sources it is read from, subsets and splits."""

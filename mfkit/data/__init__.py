"""Data: readers (Netflix Prize, MovieLens), the interactions container, splits and the synthetic Netflix generator.

Used by: Chapter 1, and every later chapter for loading and splitting.
"""
from ._io import DataFormatError, DataNotFoundError, data_home
from .interactions import Interactions, dense_index
from .movielens import (fetch_movielens_100k, load_movielens_100k, load_movielens_csv, read_grouplens_100k,
                        read_recbole_100k)
from .splits import (global_time_split, leave_k_out, probe_split, random_split, stratified_item_split,
                     train_validation_split)
from .netflix import (NetflixRatings, load_netflix, netflix_cache_path, parse_combined_data, read_movie_titles,
                      read_probe, read_qualifying)
from .synthetic import (NetflixGroundTruth, generate_netflix_sample, netflix_sample_dir, netflix_sample_truth,
                        simulate_netflix)

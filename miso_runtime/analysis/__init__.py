"""Analyses over stored EEG embeddings: the Brain Nebula (joint 3-D UMAP) and its service."""

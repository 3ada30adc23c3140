"""Readers and writers of the datasets' file formats."""

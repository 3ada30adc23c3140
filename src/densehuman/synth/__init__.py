"""Synthetic human data engine: posed, dressed Anny bodies rendered into scenes with exact labels."""

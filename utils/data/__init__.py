"""Data: dataset adapters, face-crop cache, datasets, transforms, samplers, sample-data generator."""

"""The prediction engine: windows through the model, overlap-add, and separating files segment by segment
from decoder to writer."""

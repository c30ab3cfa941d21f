"""Scoring separations: SDR/SIR/SAR, museval, SI-SDR, baselines, reports and plots."""

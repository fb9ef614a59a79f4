"""Test infrastructure (not installed): TensorBoard and headless Chromium."""

"""Small bundled programs that show audiograd working end to end."""

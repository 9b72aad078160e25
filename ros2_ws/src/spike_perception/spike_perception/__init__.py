"""Spike-based anytime perception for ROS 2.

``image_convert`` and ``core`` are ROS-free (NumPy + anytime_snn only); ``node`` is the thin rclpy adapter.
"""

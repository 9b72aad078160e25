"""Python equivalent of spike_perception.launch.xml (the XML is canonical; keep the two in step —
tests/ros/test_ros_launch_py.py compares them).

    ros2 launch spike_perception spike_perception.launch.py namespace:=robot1 image_topic:=/camera/image_raw
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    args = [
        DeclareLaunchArgument("namespace", default_value="",
                              description="Namespace of the node and its topics, service and action"),
        DeclareLaunchArgument("model", default_value="default",
                              description="Model bundle directory; 'default' = the bundled model"),
        DeclareLaunchArgument("params_file",
                              default_value=PathJoinSubstitution([FindPackageShare("spike_perception"), "config",
                                                                  "spike_perception.yaml"]),
                              description="Parameter YAML of the node"),
        DeclareLaunchArgument("image_topic", default_value="image", description="Topic the node reads images from"),
    ]
    node = Node(
        package="spike_perception", executable="anytime_classifier", name="anytime_classifier",
        namespace=LaunchConfiguration("namespace"), output="screen",
        # the YAML first, then `model` from the launch argument overrides its entry (as in the XML)
        parameters=[LaunchConfiguration("params_file"), {"model": LaunchConfiguration("model")}],
        remappings=[("image", LaunchConfiguration("image_topic"))],
    )
    return LaunchDescription([*args, node])

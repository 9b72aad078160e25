from glob import glob

from setuptools import find_packages, setup

package_name = "spike_perception"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("launch/*")),
        ("share/" + package_name + "/config", glob("config/*.yaml")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="anytime-snn maintainers",
    maintainer_email="maintainers@anytime-snn.invalid",
    description="Anytime image classification with a spiking neural network (ROS 2 node).",
    license="MIT",
    entry_points={
        "console_scripts": [
            "anytime_classifier = spike_perception.node:main",
            "planner_example = spike_perception.planner_example:main",
        ],
    },
)

"""nsenter mode finds the container's cgroup.procs files from real /proc text: a path in
/proc/PID/cgroup is relative to the mount's root (mountinfo field 4), which is the outer
container's cgroup when dockerd itself runs in a container sharing the host's cgroup namespace."""

from __future__ import annotations

import pytest

from dockersh.enter.nsenter import cgroup_procs
from dockersh.errors import DockershError

OUTER = "fb1ee7125bfa78e715a826a701331d3238de5c1621525fab492055791cb6cb2c"
INNER = "94492ca13505e1b8a4c1b3a3a1d0b0f3b0e5e6c7d8e9fa0b1c2d3e4f5a6b7c8d"

# /proc/self/mountinfo of a container run with --cgroupns=host on this cgroup v1 machine.
NESTED_MOUNTINFO = f"""\
241 240 0:90 / / rw,relatime - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w
243 242 0:91 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - tmpfs tmpfs rw,mode=755
244 243 0:29 /docker/{OUTER} /sys/fs/cgroup/cpu rw,nosuid,nodev - cgroup cgroup rw,cpu
245 243 0:30 /docker/{OUTER} /sys/fs/cgroup/cpuacct rw,nosuid,nodev - cgroup cgroup rw,cpuacct
251 243 0:36 /docker/{OUTER} /sys/fs/cgroup/pids rw,nosuid,nodev - cgroup cgroup rw,pids
252 243 0:37 /docker/{OUTER} /sys/fs/cgroup/systemd rw,nosuid,nodev - cgroup cgroup rw,name=systemd
"""

# /proc/PID/cgroup of a container that dockerd in that container made.
NESTED_CGROUP = f"""\
9:name=systemd:/docker/{OUTER}/docker/{INNER}
8:pids:/docker/{OUTER}/docker/{INNER}
2:cpuacct:/docker/{OUTER}/docker/{INNER}
1:cpu:/docker/{OUTER}/docker/{INNER}
0::/docker/{OUTER}/docker/{INNER}
"""


def test_a_path_is_joined_to_the_mount_relative_to_the_mounts_root() -> None:
    assert cgroup_procs(NESTED_CGROUP, NESTED_MOUNTINFO) == [
        f"/sys/fs/cgroup/systemd/docker/{INNER}/cgroup.procs",
        f"/sys/fs/cgroup/pids/docker/{INNER}/cgroup.procs",
        f"/sys/fs/cgroup/cpuacct/docker/{INNER}/cgroup.procs",
        f"/sys/fs/cgroup/cpu/docker/{INNER}/cgroup.procs",
    ]  # no cgroup2 mount here: the "0::" line has no file to join


def test_mounts_of_the_whole_hierarchy_keep_the_full_path() -> None:
    mountinfo = NESTED_MOUNTINFO.replace(f" /docker/{OUTER} ", " / ")
    assert cgroup_procs(f"8:pids:/docker/{INNER}\n", mountinfo) == [
        f"/sys/fs/cgroup/pids/docker/{INNER}/cgroup.procs"]
    v2 = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
    assert cgroup_procs(f"0::/system.slice/docker-{INNER}.scope\n", v2) == [
        f"/sys/fs/cgroup/system.slice/docker-{INNER}.scope/cgroup.procs"]


@pytest.mark.parametrize("path", ["/docker/other", f"/docker/{OUTER}x/docker/{INNER}"])
def test_a_cgroup_outside_the_mounted_part_is_refused(path: str) -> None:
    with pytest.raises(DockershError, match="outside every mount"):
        cgroup_procs(f"8:pids:{path}\n", NESTED_MOUNTINFO)

# Prints what the build needs to know of Debian's interpreter, one value a line:
# executable, stdlib, dist-packages, multiarch, extension suffix, version, headers,
# implementation and its version, the command that names it.
# Run with /usr/bin/python3 or /usr/bin/pypy3 only (meson.build does), never a pyenv one.
import os
import platform
import sys
import sysconfig

scheme = "deb_system" if "deb_system" in sysconfig.get_scheme_names() else None
dist = sysconfig.get_path("purelib", scheme) if scheme else "/usr/lib/python3/dist-packages"
print(os.path.realpath(sys.executable))
print(sysconfig.get_path("stdlib"))
print(dist)
print(sysconfig.get_config_var("MULTIARCH") or "x86_64-linux-gnu")
print(sysconfig.get_config_var("EXT_SUFFIX"))
print(platform.python_version())
print(sysconfig.get_path("include"))
impl = sys.implementation
print(impl.name, "%d.%d.%d" % impl.version[:3])
print(os.path.abspath(sys.executable))

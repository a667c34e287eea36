"""Build the local test environment's container images from Debian packages only.

No registry image can be pulled here, so every image starts from a Debian rootfs made by
debootstrap and imported into Docker:

- ``wacluster-base:bookworm``: Debian's Python 3.11, the base of the images below;
- ``wacluster:<tag>``: the project image from the repository's own Dockerfile, with that base;
- ``wacluster-postgres:15``: Debian's PostgreSQL 15 behaving like the official postgres image;
- ``wacluster-cloudapi:e2e``: the harness's local Cloud API (cloudapi.py) served on its own, which
  the e2e test of gateway.mode cloud runs as a pod.

Docker's layer cache makes a rebuild of unchanged sources take seconds; the debootstrap is
kept as a tarball in the cache, so it runs once per machine even when Docker's store is wiped.
To remake the base, remove both the image and ``<cache>/images/base-bookworm.tar``.
"""

from __future__ import annotations

import fcntl
import fnmatch
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO

from wacluster_testenv.build import Progress as StepClock
from wacluster_testenv.build import cache_root

DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
BASE_IMAGE = f"wacluster-base:{DEBIAN_SUITE}"
PROJECT_REPOSITORY = "wacluster"
POSTGRES_IMAGE = "wacluster-postgres:15"
CLOUDAPI_IMAGE = "wacluster-cloudapi:e2e"

REPO_ROOT = Path(__file__).resolve().parents[3]
POSTGRES_CONTEXT = REPO_ROOT / "hack" / "images" / "postgres"
# Relative to the repository: its context is assembled (cloudapi_context).
CLOUDAPI_DOCKERFILE = Path("hack", "images", "cloudapi", "Dockerfile")

# What `docker import` cannot learn from a bare rootfs. The project Dockerfile extends PATH
# (`ENV PATH=/opt/wacluster/bin:$PATH`), so the base must define it.
BASE_IMAGE_CONFIG = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["python3"]',
)

# Left out of the base: package downloads and indexes, install logs, and what debootstrap
# copies from the host or makes for a booting system (the runtime mounts its own /dev and
# /etc/resolv.conf and sets the hostname).
ROOTFS_LEFTOVERS = (
    "var/cache/apt/archives/*.deb", "var/cache/apt/*.bin", "var/lib/apt/lists/*",
    "var/cache/debconf/*-old", "var/log/*.log", "etc/resolv.conf", "etc/hostname", "dev/*",
)

# Like Debian's slim container images: no documentation or message translations (about 50 MB
# of the base). Installed as dpkg configuration, it also keeps them out of later installs.
DPKG_NO_DOCS = """\
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/locale/*/LC_MESSAGES/*.mo
"""

Progress = Callable[[str], None]

_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


def images_dir() -> Path:
    return cache_root() / "images"


def base_tarball() -> Path:
    return images_dir() / f"base-{DEBIAN_SUITE}.tar"


def build_images(tag: str = "e2e", extra_tags: Iterable[str] = (),
                 progress: Progress = print) -> dict[str, object]:
    """Make the base, project, postgres and local Cloud API images; what exists and is current
    is kept.

    Returns ``{"base": ..., "project": "wacluster:<tag>", "project_tags": [...],
    "postgres": ..., "cloudapi": ...}``. Concurrent callers wait for one another instead of racing.
    """
    images_dir().mkdir(parents=True, exist_ok=True)
    with open(images_dir() / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        clock = StepClock("testenv images", progress)
        _ensure_base_image(clock)
        project = f"{PROJECT_REPOSITORY}:{tag}"
        project_tags = [project, *(f"{PROJECT_REPOSITORY}:{extra}" for extra in extra_tags)]
        clock.step(f"building {project} from {REPO_ROOT / 'Dockerfile'}")
        _docker_build(REPO_ROOT, project)
        for extra in project_tags[1:]:
            _run(["docker", "tag", project, extra])
        clock.step(f"building {POSTGRES_IMAGE} from {POSTGRES_CONTEXT}")
        _docker_build(POSTGRES_CONTEXT, POSTGRES_IMAGE)
        clock.step(f"building {CLOUDAPI_IMAGE} from {REPO_ROOT / CLOUDAPI_DOCKERFILE}")
        _docker_build_archive(cloudapi_context(), CLOUDAPI_IMAGE)
        clock.step("images ready: " + ", ".join([BASE_IMAGE, *project_tags, POSTGRES_IMAGE, CLOUDAPI_IMAGE]))
    return {"base": BASE_IMAGE, "project": project, "project_tags": project_tags,
            "postgres": POSTGRES_IMAGE, "cloudapi": CLOUDAPI_IMAGE}


def cloudapi_context(repo_root: Path = REPO_ROOT) -> dict[str, Path]:
    """The local Cloud API image's build context, as name in the context -> file.

    Assembled rather than taken from the repository root, whose .dockerignore leaves tests/ out:
    the Dockerfile, the product's pyproject.toml (the versions of aiohttp and pydantic) and
    tests/harness as ``harness/``, without bytecode caches, which change on every test run and
    would only defeat Docker's layer cache.
    """
    harness = repo_root / "tests" / "harness"
    files = {"Dockerfile": repo_root / CLOUDAPI_DOCKERFILE,
             "pyproject.toml": repo_root / "pyproject.toml",
             "harness/pyproject.toml": harness / "pyproject.toml"}
    for path in sorted((harness / "wacluster_testenv").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            files[f"harness/{path.relative_to(harness).as_posix()}"] = path
    return files


def _ensure_base_image(clock: StepClock) -> None:
    if _image_exists(BASE_IMAGE):
        clock.step(f"{BASE_IMAGE} is already in Docker")
        return
    if not base_tarball().exists():
        rootfs = _debootstrap(clock)
        clock.step(f"cleaning the rootfs and packing it into {base_tarball()}")
        _prepare_rootfs(rootfs)
        partial = base_tarball().with_suffix(".tar.partial")
        with open(partial, "wb") as out:
            _run(["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."], stdout=out)
        partial.replace(base_tarball())
        shutil.rmtree(rootfs)  # the tarball is the cache; the tree would double the disk use
    clock.step(f"importing {base_tarball()} as {BASE_IMAGE}")
    changes = [arg for change in BASE_IMAGE_CONFIG for arg in ("--change", change)]
    with open(base_tarball(), "rb") as tarball:
        _run(["docker", "import", *changes, "-", BASE_IMAGE], stdin=tarball)


def _debootstrap(clock: StepClock) -> Path:
    """Debootstrap into a scratch directory renamed on success: a half rootfs is never reused."""
    rootfs = images_dir() / f"rootfs-{DEBIAN_SUITE}"
    scratch = images_dir() / f"rootfs-{DEBIAN_SUITE}.partial"
    shutil.rmtree(scratch, ignore_errors=True)
    if rootfs.exists():
        clock.step(f"reusing the finished debootstrap in {rootfs}")
        return rootfs
    clock.step(f"debootstrap {DEBIAN_SUITE} ({', '.join(BASE_PACKAGES)}) from {DEBIAN_MIRROR}")
    _run(["debootstrap", "--variant=minbase", "--include=" + ",".join(BASE_PACKAGES),
          DEBIAN_SUITE, str(scratch), DEBIAN_MIRROR])
    scratch.rename(rootfs)
    return rootfs


def _prepare_rootfs(rootfs: Path) -> None:
    for pattern in ROOTFS_LEFTOVERS:
        for path in rootfs.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    for folder, _, files in os.walk(rootfs / "usr/share"):
        for name in files:
            path = Path(folder, name)
            if excluded_by_dpkg("/" + str(path.relative_to(rootfs)), DPKG_NO_DOCS):
                path.unlink()
    (rootfs / "etc/dpkg/dpkg.cfg.d/no-docs").write_text(DPKG_NO_DOCS)
    _add_host_certificates(rootfs)


def excluded_by_dpkg(path: str, rules: str) -> bool:
    """Whether dpkg's path-exclude/path-include rules leave ``path`` out: the last match wins,
    and ``*`` also matches ``/`` (fnmatch without FNM_PATHNAME, as dpkg uses it)."""
    excluded = False
    for line in rules.splitlines():
        kind, pattern = line.split()
        if fnmatch.fnmatchcase(path, pattern):
            excluded = kind == "path-exclude"
    return excluded


def extra_certificates(host_bundle: str, image_bundle: str) -> list[str]:
    """The PEM certificates the host trusts that the image's bundle lacks."""
    known = {"".join(pem.split()) for pem in _CERTIFICATE.findall(image_bundle)}
    return [pem for pem in _CERTIFICATE.findall(host_bundle) if "".join(pem.split()) not in known]


def _add_host_certificates(rootfs: Path) -> None:
    """Trust in the base what the host trusts beyond Debian's bundle.

    PyPI is reached here through a TLS-intercepting egress proxy whose CA only the host's
    bundle holds, so `pip install` in the project build fails certificate verification without
    it (plain HTTP to deb.debian.org and DNS through docker0 work as they are). The certificates
    go to /usr/local/share/ca-certificates too, so a later update-ca-certificates keeps them.
    """
    host_bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    image_bundle = rootfs / "etc/ssl/certs/ca-certificates.crt"
    if not host_bundle.exists():
        return
    extra = extra_certificates(host_bundle.read_text(), image_bundle.read_text())
    if not extra:
        return
    local = rootfs / "usr/local/share/ca-certificates"
    local.mkdir(parents=True, exist_ok=True)
    for index, pem in enumerate(extra):
        (local / f"host-{index}.crt").write_text(pem + "\n")
    with open(image_bundle, "a") as bundle:
        bundle.write("".join(pem + "\n" for pem in extra))


def import_into_containerd(images: Sequence[str], address: str, namespace: str = "k8s.io",
                           progress: Progress = print) -> None:
    """Copy Docker images into a containerd, where the kubelet finds them without a registry.

    containerd names them by their normalised reference (``wacluster:e2e`` becomes
    ``docker.io/library/wacluster:e2e``), which is also how the kubelet resolves a pod's
    ``image: wacluster:e2e``; pods use ``imagePullPolicy: Never`` or ``IfNotPresent``.
    """
    progress(f"importing {', '.join(images)} into containerd at {address} ({namespace})")
    ctr = ["ctr", "--address", address, "--namespace", namespace, "images", "import"]
    save_cmd = ["docker", "save", *images]
    save = subprocess.Popen(save_cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=_docker_env())
    try:
        _run([*ctr, "-"], stdin=save.stdout)
    except CommandFailed:
        # A failed save also fails the import, with a less telling message: report the save.
        if save.wait() != 0:
            raise CommandFailed(save_cmd, save.returncode, save.stderr.read().decode()) from None
        raise
    finally:
        save.stdout.close()
    if save.wait() != 0:
        raise CommandFailed(save_cmd, save.returncode, save.stderr.read().decode())


def _docker_build(context: Path, tag: str) -> None:
    # The default bridge network suffices: containers reach PyPI and deb.debian.org through
    # docker0's NAT, with the host's (non-loopback) resolver copied into /etc/resolv.conf.
    _run(["docker", "build", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "-t", tag, str(context)])


def _docker_build_archive(files: dict[str, Path], tag: str) -> None:
    """Build from a context given as files: sent to Docker as a tar on standard input."""
    with tempfile.TemporaryFile() as context:
        with tarfile.open(fileobj=context, mode="w") as archive:
            for name, path in files.items():
                info = archive.gettarinfo(str(path), arcname=name)
                # Owner and time say nothing about the content; fixed, they cannot vary the build.
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mtime = 0
                with open(path, "rb") as data:
                    archive.addfile(info, data)
        context.seek(0)
        _run(["docker", "build", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "-t", tag, "-"], stdin=context)


def _image_exists(image: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", image], capture_output=True,
                          env=_docker_env()).returncode == 0


def _docker_env() -> dict[str, str]:
    # The legacy builder: the engine may be older than the client and have no buildx.
    return {**os.environ, "DOCKER_BUILDKIT": "0"}


class CommandFailed(RuntimeError):
    def __init__(self, cmd: Sequence[str], returncode: int, output: str) -> None:
        tail = "\n".join(output.strip().splitlines()[-30:])
        super().__init__(f"`{' '.join(cmd)}` failed (exit {returncode}):\n{tail}")


def _run(cmd: list[str], stdin: IO[bytes] | None = None, stdout: IO[bytes] | None = None) -> None:
    """Run a command to completion; a failure raises with the tail of what it printed.

    Both streams are kept (the legacy builder prints a failing step to stdout), unless
    ``stdout`` is the command's product and goes to a file.
    """
    try:
        proc = subprocess.run(cmd, stdin=stdin, stdout=stdout or subprocess.PIPE,
                              stderr=subprocess.PIPE if stdout else subprocess.STDOUT,
                              env=_docker_env())
    except FileNotFoundError:
        raise RuntimeError(f"`{cmd[0]}` is not installed: building the test images needs "
                           "docker, debootstrap, tar and ctr (containerd)") from None
    if proc.returncode != 0:
        printed = proc.stderr if stdout else proc.stdout
        raise CommandFailed(cmd, proc.returncode, (printed or b"").decode(errors="replace"))

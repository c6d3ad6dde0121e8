"""The admin's catalogue: YAML file, defaults sized from the host, GPU discovery."""
import pytest

from jupyter_jobs.cluster import Cluster, default_instance_types, parse_memory, parse_nvidia_smi
from jupyter_jobs.errors import ConfigError, SpecError
from jupyter_jobs.models import Gpu

NVIDIA_SMI = """0, GPU-1111, NVIDIA H100 80GB HBM3, 81559
1, GPU-2222, NVIDIA H100 80GB HBM3, 81559
"""


def test_parse_nvidia_smi():
    assert parse_nvidia_smi(NVIDIA_SMI) == [
        Gpu(0, "NVIDIA H100 80GB HBM3", "GPU-1111", 81559), Gpu(1, "NVIDIA H100 80GB HBM3", "GPU-2222", 81559)]
    assert parse_nvidia_smi("No devices were found\n") == []


def test_discovery_uses_nvidia_smi(tmp_path):
    fake = tmp_path / "nvidia-smi"
    fake.write_text(f"#!/bin/sh\ncat <<'EOF'\n{NVIDIA_SMI}EOF\n")
    fake.chmod(0o755)
    cluster = Cluster(nvidia_smi=str(fake), cpus=16, memory_mib=65536)
    cluster.load()
    assert [g.index for g in cluster.host_gpus] == [0, 1]
    assert [(t.name, t.gpus, t.cpus, t.memory_mib) for t in cluster.types] == [
        ("cpu", 0, 1, 4096), ("gpu", 1, 8.0, 32768), ("gpu-x2", 2, 16.0, 65536)]


def test_defaults_without_gpus_pack_one_job_per_cpu():
    (cpu,) = default_instance_types(4, 8192, [])
    assert (cpu.name, cpu.cpus, cpu.memory_mib, cpu.gpus) == ("cpu", 1, 2048, 0)


def test_yaml_file_adds_types_and_datasets(tmp_path):
    (tmp_path / "data").mkdir()
    config = tmp_path / "jobs.yaml"
    config.write_text(f"""
instance_types:
  - {{name: small, cpus: 1, memory: 2GiB}}
  - {{name: t4, cpus: 4, memory: 16GiB, gpus: 1, gpu_type: Tesla T4, network: true}}
datasets:
  mnist: {tmp_path}/data
  imagenet: {{path: /srv/imagenet, description: ILSVRC}}
gpus: 1
default_instance_type: small
""")
    cluster = Cluster(config_file=str(config))
    cluster.load()
    assert [(t.name, t.memory_mib, t.gpu_type, t.network) for t in cluster.types] == [
        ("small", 2048, None, False), ("t4", 16384, "Tesla T4", True)]
    assert cluster.default_type == "small"
    assert cluster.dataset("imagenet").description == "ILSVRC"
    assert [g.index for g in cluster.host_gpus] == [0]
    with pytest.raises(SpecError, match="unknown dataset 'cifar'; available: mnist, imagenet"):
        cluster.dataset("cifar")
    with pytest.raises(SpecError, match="choose one of: small, t4"):
        cluster.instance_type("huge")


@pytest.mark.parametrize("text, message", [
    ("instance_types: [{cpus: 1}]", "Cluster.instance_types[0]: expected a mapping with at least 'name'"),
    ("instance_types: [{name: a, gpu: 1}]", "Cluster.instance_types[0].gpu: unknown key"),
    ("gpus: lots", "Cluster.gpus: expected nothing"),
    ("datasets: {x: [1]}", "Cluster.datasets.x: expected a host path"),
    ("colour: blue", "unknown key 'colour'"),
    ("instance_types: [{name: a}]\ndefault_instance_type: b", "Cluster.default_instance_type: 'b' is not one of"),
])
def test_config_mistakes_name_the_setting(tmp_path, text, message):
    config = tmp_path / "jobs.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Cluster(config_file=str(config), gpus=0).load()


@pytest.mark.parametrize("value, mib", [(512, 512), ("4GiB", 4096), ("512MiB", 512), ("2G", 2048), ("1.5g", 1536)])
def test_parse_memory(value, mib):
    assert parse_memory(value) == mib

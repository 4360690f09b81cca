"""The workflow refuses ``saturate`` together with ``vcf`` (it used to ignore the VCF)."""

from __future__ import annotations

from tests.test_workflow import snakemake, write_config


def test_saturate_with_vcf_is_a_config_error(tmp_path):
    vcf = tmp_path / "in.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
    config = write_config(tmp_path / "c.yaml", outdir=str(tmp_path / "out"), vcf=str(vcf))
    result = snakemake(
        tmp_path, "-n", "--cores", "1", "--configfile", str(config), "--config", "saturate=2"
    )
    output = (result.stdout + result.stderr).splitlines()
    assert result.returncode != 0
    headline = next(i for i, text in enumerate(output) if "Error validating config file" in text)
    assert output[headline + 1].strip().startswith("saturate: set together with vcf")

"""The package's shape: no import cycle between its parts, and a small public surface."""

import ast
import pathlib

import pytest

import genprior_jax as gp

ROOT = pathlib.Path(gp.__file__).parent


def _unit(path: pathlib.Path) -> str:
    """The part a module belongs to: its subpackage (``solvers``) or, for a top-level module, its name."""
    rel = path.relative_to(ROOT).with_suffix("")
    return rel.parts[0]


def _resolve(path: pathlib.Path, node: ast.ImportFrom) -> list[str]:
    """The ``genprior_jax`` modules an import statement names, as dotted paths relative to the package."""
    if node.level == 0:
        mod = node.module or ""
        if not mod.startswith("genprior_jax"):
            return []
        base = mod.split(".")[1:]
    else:
        pkg = list(path.relative_to(ROOT).parent.parts)
        if path.name != "__init__.py" or node.level > 1:
            pkg = pkg[: len(pkg) - (node.level - 1)] if node.level > 1 else pkg
        base = pkg + (node.module.split(".") if node.module else [])
    if base:
        return [".".join(base)]
    return [alias.name for alias in node.names]  # "from . import solvers" at the top level


def import_graph() -> dict[str, set[str]]:
    """Part -> the other parts it imports (module-level and function-level imports alike)."""
    graph: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        if path == ROOT / "__init__.py" or path.name == "__main__.py":
            continue  # the facade re-exports every part; it is the top of the graph, not a part
        src = _unit(path)
        graph.setdefault(src, set())
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                targets = _resolve(path, node)
            elif isinstance(node, ast.Import):
                targets = [a.name.split(".", 1)[1] for a in node.names if a.name.startswith("genprior_jax.")]
            for t in targets:
                dst = t.split(".")[0]
                if dst and dst != src:
                    graph[src].add(dst)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        state[n] = 2
        stack.pop()
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_no_import_cycle_between_parts():
    graph = import_graph()
    assert {"solvers", "operators", "priors", "likelihoods", "transforms"} <= set(graph)
    assert "priors" in graph["solvers"] and "operators" in graph["likelihoods"]  # the walk sees real edges
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"


def test_cycle_finder_can_fail():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


# The public API, name by name: a name added to (or dropped from) a package's __all__ must be added here too,
# a deliberate review of the public surface (it replaced a cap on the size of gp.solvers.__all__).
PUBLIC_API = {
    "genprior_jax": {
        "Dataset", "DatasetUnavailableError", "GaussianNoise", "ImageDataset", "LogisticNoise", "Prior",
        "Reconstruction", "Result",
        "RunOptions", "Solver", "Status", "adversarial", "analysis", "asim", "available_priors", "bm3d_denoise",
        "check_adjoint", "csgm", "dip", "enable_compilation_cache", "langevin", "lasso", "load_checkpoint",
        "load_dataset", "load_mnist", "load_prior", "load_tfds",
        "map_estimate", "measure", "metrics", "mse", "noise_std_for_norm", "operators", "patchnr", "priors", "psnr",
        "reconstruct", "run", "save_checkpoint", "solvers", "ssim", "train_prior", "transforms", "tv", "variational",
        "ald", "diffpir", "dps", "pnp",
    },
    "genprior_jax.solvers": {
        "AnalysisHyper", "BayesHyper", "CSGMHyper", "DIPHyper", "LangevinHyper", "LassoHyper", "METHODS",
        "MemoryEstimate", "Method", "PatchHyper", "Problem", "Reconstruction", "Result", "RunOptions", "Solver",
        "Status", "TVHyper", "analysis", "analysis_solver", "asim", "backproject", "backproject_batch", "bm3d_denoise",
        "csgm", "csgm_solver", "defaults", "dip", "dip_solver", "estimate_memory", "estimate_model_error", "get_method",
        "langevin", "langevin_solver", "langevin_summary", "lasso", "lasso_solver", "learn_weight_prior",
        "map_estimate", "map_solver", "patch_nll", "patch_prior_solver", "patchnr", "reconstruct", "run", "sample_q",
        "solve", "tv", "tv_solver", "variational", "vi_solver",
        "ALDHyper", "DPSHyper", "DiffPIRHyper", "PnPHyper", "ald", "ald_solver", "diffpir", "diffpir_solver", "dps",
        "dps_solver", "pnp", "pnp_solver",
    },
    "genprior_jax.operators": {
        "Adjoint", "BlockPixels", "Blur", "BoxMask", "Composed", "Downsample", "EXAMPLES", "FunctionMeasurement",
        "GaussianCS", "GaussianNoise", "Identity", "KeepPatch", "LinearOperator", "LogisticNoise", "MeasurementModel",
        "NoiseModel", "OPERATORS", "OneBit", "Operator", "PhaseRetrieval", "Radon", "RandomMask", "StructuredCS",
        "SubsampledFourier", "as_complex", "as_real", "check_adjoint", "fbp", "frobenius_sq", "gaussian_kernel",
        "line_mask", "make_operator", "measure", "noise_std_for_norm", "operator_norm_sq", "parse_measurement",
        "parse_spec", "pinv", "ramp_filter", "uniform_kernel", "variable_density_mask"
    },
    "genprior_jax.priors": {
        "ActNorm", "AffineCoupling", "CONV_IMPLS", "DCGAN_CONFIGS", "DeepDecoderSize", "FLOW_CONFIGS", "FLOW_KINDS",
        "GENERATORS", "InvConv1x1", "MultiScaleFlow", "Prior", "Reverse", "SplitPrior", "UntrainedGenerator",
        "WeightPrior", "available_priors", "batch_log_prob", "bits_per_dim", "dcgan_functions", "dcgan_modules",
        "dcgan_prior", "default_deep_decoder", "elbo", "fit_weight_prior", "flow_functions", "flow_prior", "init_dcgan",
        "init_flow", "init_vae", "latent_part_shapes", "layer_means", "load_prior", "untrained_generator",
        "vae_functions", "vae_prior", "weight_penalty", "UNet", "diffusion_prior", "init_diffusion"
    },
    "genprior_jax.transforms": {
        "BASES", "DCTBasis", "Gradient", "WAVELETS", "WaveletBasis", "check_wavelet", "dct2", "detail_weights", "dwt2",
        "extract_patches", "filters", "idct2", "idwt2", "make_basis", "num_patches", "padded_size", "put_patches",
        "squeeze", "tv_norm", "unsqueeze"
    },
}


@pytest.mark.parametrize("module", [gp, gp.solvers, gp.operators, gp.priors, gp.transforms])
def test_public_names_exist_and_are_public(module):
    names = module.__all__
    assert len(names) == len(set(names)), "duplicate names in __all__"
    for name in names:
        assert hasattr(module, name), f"{module.__name__}.__all__ names a missing {name!r}"
        assert not name.startswith("_")
    added, dropped = sorted(set(names) - PUBLIC_API[module.__name__]), sorted(PUBLIC_API[module.__name__] - set(names))
    assert not added and not dropped, (f"{module.__name__}.__all__ differs from the public API allow-list: added "
                                       f"{added}, dropped {dropped}; update PUBLIC_API if that is intended")
    assert "trace_count" not in gp.solvers.__all__  # test hooks stay in their modules

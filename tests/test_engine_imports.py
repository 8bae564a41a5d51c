"""The engine is given ablation records, it never finds them: no module of engine/ imports `ablations`
(the command at the end of engine/tools/pretrain.py, run as a program, gives its own), and each imports with
`ablations` out of reach."""
import ast
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# every module of the engine, its side programs (engine/tools/) too
MODULES = sorted(os.path.relpath(os.path.join(folder, f), REPO)[:-3].replace(os.sep, ".").removesuffix(".__init__")
                 for folder, _, files in os.walk(os.path.join(REPO, "engine")) for f in files if f.endswith(".py"))


def is_main_block(node):
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and isinstance(test, ast.Compare) and getattr(test.left, "id", "") == "__name__"


def imported_names(tree):
    """The modules a file imports, anywhere but in its `if __name__ == "__main__":` block."""
    names, todo = set(), [n for n in tree.body if not is_main_block(n)]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        todo += list(ast.iter_child_nodes(node))
    return names


def test_no_engine_module_imports_the_ablations():
    assert {"engine", "engine.one_run", "engine.tools", "engine.tools.pretrain", "engine.tools.launch"} <= set(MODULES)
    for module in MODULES:
        path = os.path.join(REPO, *module.split("."))
        path = os.path.join(path, "__init__.py") if os.path.isdir(path) else path + ".py"
        names = imported_names(ast.parse(open(path, encoding="utf-8").read()))
        assert not [n for n in names if n == "ablations" or n.startswith("ablations.")], module


def test_every_engine_module_imports_with_the_ablations_out_of_reach():
    script = ("import importlib, sys\n"
              "class NoAblations:\n"
              "    def find_spec(self, name, path=None, target=None):\n"
              "        if name == 'ablations' or name.startswith('ablations.'):\n"
              "            raise ImportError('ablations imported by ' + current)\n"
              "sys.meta_path.insert(0, NoAblations())\n"
              f"for current in {MODULES!r}:\n"
              "    importlib.import_module(current)\n"
              "assert not [m for m in sys.modules if m.split('.')[0] == 'ablations']\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-1500:]


def project_imports(path):
    """The repository's top-level packages and modules a file imports (outside its __main__ block)."""
    return {n.split(".")[0] for n in imported_names(ast.parse(open(path, encoding="utf-8").read()))} & \
        {"ablations", "benchmarks", "data", "engine", "files", "probes", "report", "run_all", "segmodels"}


def test_data_never_imports_the_engine_and_files_imports_nothing_of_the_repository():
    """The flow is one way (engine → data); files.py, which both write through, sits beneath both."""
    folder = os.path.join(REPO, "data")
    for file in sorted(f for f in os.listdir(folder) if f.endswith(".py")):
        assert project_imports(os.path.join(folder, file)) <= {"data", "files"}, file
    assert project_imports(os.path.join(REPO, "files.py")) == set()
    assert "files" in project_imports(os.path.join(REPO, "data", "synthetic.py"))  # the test reads real imports

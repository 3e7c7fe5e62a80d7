# The kiln lit suite: *.kir files (text IR) and *.test files whose RUN lines
# call kiln-opt / kiln and check their output with FileCheck.
import os

import lit.formats

if not hasattr(config, "kiln_tools_dir"):
    lit_config.fatal("run lit on the build tree's tests/lit directory (it holds the generated "
                     "lit.site.cfg.py), e.g. `lit.py -sv build/tests/lit`, or use `ctest -R lit`")

config.name = "kiln"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".kir", ".test"]
config.excludes = ["Inputs"]
config.test_source_root = os.path.dirname(os.path.abspath(__file__))
config.test_exec_root = config.kiln_exec_root

# Text IR -> .kiln without the ONNX frontend (tests/runtime/make_artifact.cpp),
# for artifacts no ONNX model in the tree gives (a decoder with KV pairs).
config.substitutions.append(("%kiln_make_artifact", config.kiln_make_artifact))
# The python that runs lit (Debian's, with what scripts/install-deps brings),
# not whichever python3 comes first on PATH.
config.substitutions.append(("%kiln_python", config.kiln_python))

# The tools under test first, then FileCheck, not and split-file.
config.environment["PATH"] = os.pathsep.join(
    [config.kiln_tools_dir, config.kiln_llvm_tools_dir, config.environment.get("PATH", "")])

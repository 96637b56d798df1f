#!/usr/bin/env python3
"""Checks a Greengrass component recipe against the recipe format, and renders a
lifecycle step the way a core device would, so that tests can run it.

    check_recipe.py check RECIPE.json [--artifacts-dir DIR]
    check_recipe.py script RECIPE.json STEP --os linux --arch amd64 \
        --artifacts DIR --work DIR [--set Key=Value ...]

The format rules follow AWS's component recipe reference (recipe format 2020-01-25):
required and known keys at each level, value types and enumerations, lifecycle step
shapes, recipe variables, and that scripts name only artifacts their manifest ships.
Limitation: selection keys in a global lifecycle are not supported (this project's
recipes do not use them) and are reported as unknown keys.
"""

import argparse
import json
import re
import sys
from pathlib import Path

TOP = {
    "RecipeFormatVersion": str, "ComponentName": str, "ComponentVersion": str,
    "ComponentDescription": str, "ComponentPublisher": str, "ComponentType": str,
    "ComponentSource": str, "ComponentConfiguration": dict,
    "ComponentDependencies": dict, "Manifests": list, "Lifecycle": dict,
}
REQUIRED_TOP = ("RecipeFormatVersion", "ComponentName", "ComponentVersion", "Manifests")
COMPONENT_TYPES = {
    "aws.greengrass.generic", "aws.greengrass.lambda", "aws.greengrass.plugin",
    "aws.greengrass.nucleus",
}
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MANIFEST = {"Name": str, "Platform": dict, "Lifecycle": dict, "Selections": list,
            "Artifacts": list}
OSES = {"linux", "windows", "darwin", "*"}
ARCHES = {"amd64", "arm", "aarch64", "x86", "*"}
ARTIFACT = {"Uri": str, "Digest": str, "Algorithm": str, "Unarchive": str,
            "Permission": dict}
URI = re.compile(r"^(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/\S+|greengrass:\S+|docker:\S+)$")
PERMISSIONS = {"NONE", "OWNER", "ALL"}
STEPS = {"bootstrap", "install", "run", "startup", "shutdown", "recover"}
STEP = {"Script": str, "RequiresPrivilege": bool, "Skipif": str, "Timeout": int,
        "Setenv": dict}
SKIPIF = re.compile(r"^(onpath|exists) \S")
VARIABLE = re.compile(r"\{([A-Za-z0-9._-]+:)?(artifacts|work|kernel|configuration|iot)"
                      r":([^{}]*)\}")
ANY_VARIABLE = re.compile(r"\{[^{}\s']*:[^{}]*\}")
SIMPLE_VARIABLES = {
    "artifacts": {"path", "decompressedPath"}, "work": {"path"},
    "kernel": {"rootPath"}, "iot": {"thingName"},
}


class Problems(list):
    """The problems found, each naming where in the recipe it is."""

    def keys(self, where, value, known, required=()):
        if not isinstance(value, dict):
            self.append(f"{where}: must be an object")
            return False
        for key in required:
            if key not in value:
                self.append(f"{where}: {key} is required")
        for key, item in value.items():
            if key not in known:
                self.append(f"{where}: unknown key {key}")
            elif not isinstance(item, known[key]) or (known[key] is int and isinstance(item, bool)):
                self.append(f"{where}.{key}: must be {known[key].__name__}")
        return True


def check(recipe, artifacts_dir=None):
    problems = Problems()
    if not problems.keys("recipe", recipe, TOP, REQUIRED_TOP):
        return problems
    if recipe.get("RecipeFormatVersion") != "2020-01-25":
        problems.append("RecipeFormatVersion: must be 2020-01-25")
    if not NAME.match(str(recipe.get("ComponentName", ""))):
        problems.append("ComponentName: letters, digits, '.', '_' and '-', at most 128")
    if not SEMVER.match(str(recipe.get("ComponentVersion", ""))):
        problems.append("ComponentVersion: must be a semantic version MAJOR.MINOR.PATCH")
    if "ComponentType" in recipe and recipe["ComponentType"] not in COMPONENT_TYPES:
        problems.append(f"ComponentType: must be one of {sorted(COMPONENT_TYPES)}")
    defaults = check_configuration(recipe.get("ComponentConfiguration", {}), problems)
    check_dependencies(recipe.get("ComponentDependencies", {}), problems)

    manifests = recipe.get("Manifests", [])
    if isinstance(manifests, list) and not manifests:
        problems.append("Manifests: at least one manifest is required")
    global_lifecycle = recipe.get("Lifecycle")
    if global_lifecycle is not None:
        check_lifecycle("Lifecycle", global_lifecycle, defaults, problems)
    for index, manifest in enumerate(manifests if isinstance(manifests, list) else []):
        check_manifest(f"Manifests[{index}]", manifest, global_lifecycle, defaults,
                       artifacts_dir, problems)
    return problems


def check_configuration(configuration, problems):
    if not problems.keys("ComponentConfiguration", configuration,
                         {"DefaultConfiguration": dict}):
        return {}
    return configuration.get("DefaultConfiguration", {})


def check_dependencies(dependencies, problems):
    if not isinstance(dependencies, dict):
        problems.append("ComponentDependencies: must be an object")
        return
    for name, dependency in dependencies.items():
        where = f"ComponentDependencies.{name}"
        if problems.keys(where, dependency, {"VersionRequirement": str, "DependencyType": str}):
            if dependency.get("DependencyType", "HARD") not in ("HARD", "SOFT"):
                problems.append(f"{where}.DependencyType: must be HARD or SOFT")


def check_manifest(where, manifest, global_lifecycle, defaults, artifacts_dir, problems):
    if not problems.keys(where, manifest, MANIFEST):
        return
    platform = manifest.get("Platform", {})
    if isinstance(platform, dict):
        for key, value in platform.items():
            if not isinstance(value, str):
                problems.append(f"{where}.Platform.{key}: must be a string")
        if platform.get("os", "*") not in OSES:
            problems.append(f"{where}.Platform.os: must be one of {sorted(OSES)}")
        if platform.get("architecture", "*") not in ARCHES:
            problems.append(f"{where}.Platform.architecture: must be one of {sorted(ARCHES)}")
    files = set()
    for index, artifact in enumerate(manifest.get("Artifacts", [])):
        files.add(check_artifact(f"{where}.Artifacts[{index}]", artifact, problems))
    lifecycle = manifest.get("Lifecycle", global_lifecycle)
    if "Lifecycle" in manifest:
        check_lifecycle(f"{where}.Lifecycle", lifecycle, defaults, problems)
    if lifecycle is None:
        problems.append(f"{where}: no lifecycle, in the manifest or global")
        return
    for step, script in scripts(lifecycle):
        for name in re.findall(r"\{artifacts:(?:decompressed)?[pP]ath\}/([^\s'\"/;|&]+)", script):
            if name not in files:
                problems.append(f"{where}: lifecycle {step} uses artifact {name}, "
                                f"which the manifest does not ship")
            elif artifacts_dir is not None and not (Path(artifacts_dir) / name).is_file():
                problems.append(f"{where}: artifact {name} is missing from {artifacts_dir}")


def check_artifact(where, artifact, problems):
    if not problems.keys(where, artifact, ARTIFACT, ("Uri",)):
        return None
    uri = artifact.get("Uri", "")
    if not URI.match(uri):
        problems.append(f"{where}.Uri: must be s3://BUCKET/KEY, greengrass: or docker:")
    if artifact.get("Unarchive", "NONE") not in ("NONE", "ZIP"):
        problems.append(f"{where}.Unarchive: must be NONE or ZIP")
    if "Digest" in artifact and "Algorithm" not in artifact:
        problems.append(f"{where}: a Digest needs its Algorithm")
    permission = artifact.get("Permission", {})
    if problems.keys(f"{where}.Permission", permission, {"Read": str, "Execute": str}):
        for key, value in permission.items():
            if value not in PERMISSIONS:
                problems.append(f"{where}.Permission.{key}: must be NONE, OWNER or ALL")
    return uri.rsplit("/", 1)[-1]


def check_lifecycle(where, lifecycle, defaults, problems):
    if not isinstance(lifecycle, dict):
        problems.append(f"{where}: must be an object")
        return
    if "run" in lifecycle and "startup" in lifecycle:
        problems.append(f"{where}: run and startup exclude each other")
    for key, step in lifecycle.items():
        if key == "Setenv":
            check_setenv(f"{where}.Setenv", step, problems)
        elif key not in STEPS:
            problems.append(f"{where}: unknown lifecycle step {key}")
        elif isinstance(step, dict):
            known = dict(STEP, BootstrapOnRollback=bool) if key == "bootstrap" else STEP
            problems.keys(f"{where}.{key}", step, known, ("Script",))
            if "Skipif" in step and not SKIPIF.match(str(step["Skipif"])):
                problems.append(f"{where}.{key}.Skipif: must be 'onpath EXE' or 'exists FILE'")
            if isinstance(step.get("Timeout"), int) and step["Timeout"] <= 0:
                problems.append(f"{where}.{key}.Timeout: must be positive")
            check_setenv(f"{where}.{key}.Setenv", step.get("Setenv", {}), problems)
        elif not isinstance(step, str):
            problems.append(f"{where}.{key}: must be a script or an object with Script")
    for step, script in scripts(lifecycle):
        check_variables(f"{where}.{step}", script, defaults, problems)


def check_setenv(where, setenv, problems):
    if not isinstance(setenv, dict) or not all(isinstance(v, str) for v in setenv.values()):
        problems.append(f"{where}: must map names to strings")


def check_variables(where, script, defaults, problems):
    known = {match.group(0) for match in VARIABLE.finditer(script)}
    for text in ANY_VARIABLE.findall(script):
        if text not in known:
            problems.append(f"{where}: unknown recipe variable {text}")
    for match in VARIABLE.finditer(script):
        namespace, key = match.group(2), match.group(3)
        if namespace == "configuration":
            if resolve(defaults, key) is None:
                problems.append(f"{where}: {match.group(0)} is not in DefaultConfiguration")
        elif key not in SIMPLE_VARIABLES[namespace]:
            problems.append(f"{where}: unknown recipe variable {match.group(0)}")


def resolve(configuration, pointer):
    """The value a JSON pointer names in the configuration, or None."""
    if not pointer.startswith("/"):
        return None
    value = configuration
    for part in pointer[1:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def scripts(lifecycle):
    for key, step in lifecycle.items():
        if key in STEPS:
            yield key, step if isinstance(step, str) else str(step.get("Script", ""))


def render(recipe, step, os_name, arch, artifacts, work, overrides):
    """The script a device of that platform runs for STEP, with variables replaced."""
    for manifest in recipe["Manifests"]:
        platform = manifest.get("Platform", {})
        if platform.get("os", "*") in (os_name, "*") and \
                platform.get("architecture", "*") in (arch, "*"):
            break
    else:
        raise SystemExit(f"no manifest matches {os_name}/{arch}")
    lifecycle = manifest.get("Lifecycle", recipe.get("Lifecycle", {}))
    if step not in lifecycle:
        raise SystemExit(f"the lifecycle has no {step} step")
    configuration = dict(recipe.get("ComponentConfiguration", {})
                         .get("DefaultConfiguration", {}))
    configuration.update(overrides)
    values = {
        "artifacts:path": artifacts, "artifacts:decompressedPath": artifacts,
        "work:path": work, "kernel:rootPath": str(Path(work).parent),
        "iot:thingName": "test-thing",
    }

    def substitute(match):
        if match.group(2) == "configuration":
            value = resolve(configuration, match.group(3))
            return value if isinstance(value, str) else json.dumps(value)
        return values[f"{match.group(2)}:{match.group(3)}"]

    body = lifecycle[step]
    script = body if isinstance(body, str) else body["Script"]
    return VARIABLE.sub(substitute, script)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    checking = commands.add_parser("check")
    checking.add_argument("recipe")
    checking.add_argument("--artifacts-dir")
    rendering = commands.add_parser("script")
    rendering.add_argument("recipe")
    rendering.add_argument("step")
    rendering.add_argument("--os", default="linux")
    rendering.add_argument("--arch", default="amd64")
    rendering.add_argument("--artifacts", required=True)
    rendering.add_argument("--work", required=True)
    rendering.add_argument("--set", action="append", default=[])
    args = parser.parse_args()

    try:
        recipe = json.loads(Path(args.recipe).read_text())
    except (OSError, ValueError) as error:
        print(f"{args.recipe}: {error}", file=sys.stderr)
        return 1
    if args.command == "check":
        problems = check(recipe, args.artifacts_dir)
        for problem in problems:
            print(f"{args.recipe}: {problem}", file=sys.stderr)
        return 1 if problems else 0
    overrides = dict(item.split("=", 1) for item in args.set)
    print(render(recipe, args.step, args.os, args.arch, args.artifacts, args.work, overrides))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# Lays out the net.tagrun.Agent component for publishing, in target/greengrass/:
#   recipes/net.tagrun.Agent-VERSION.json   the recipe, with BUCKET in the artifact URIs
#   artifacts/net.tagrun.Agent/VERSION/     the static agents and lifecycle.sh
# Upload the artifacts to s3://BUCKET/net.tagrun.Agent/VERSION/ and create the component
# with `aws greengrassv2 create-component-version --inline-recipe fileb://RECIPE`, or
# deploy locally with `greengrass-cli deployment create --recipeDir target/greengrass/recipes
# --artifactDir target/greengrass/artifacts --merge net.tagrun.Agent=VERSION`.
#
#   packaging/greengrass/package.sh BUCKET      (run packaging/edge.sh first)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo_dir="$(cd "$here/../.." && pwd)"
bucket="${1:?usage: $0 BUCKET}"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo_dir/Cargo.toml" | head -n 1)"
out="${GREENGRASS_OUT:-$repo_dir/target/greengrass}"
artifacts="$out/artifacts/net.tagrun.Agent/$version"

mkdir -p "$out/recipes" "$artifacts"
recipe="$out/recipes/net.tagrun.Agent-$version.json"
sed -e "s/@VERSION@/$version/g" -e "s/@BUCKET@/$bucket/g" "$here/recipe.template.json" >"$recipe"
install -m 0755 "$here/lifecycle.sh" "$artifacts/lifecycle.sh"
for arch in x86_64 aarch64 armv7; do
    binary="$repo_dir/target/edge/tagrun-agent-$arch"
    [ -f "$binary" ] || { echo "$binary is missing: run packaging/edge.sh" >&2; exit 1; }
    install -m 0755 "$binary" "$artifacts/tagrun-agent-$arch"
done
python3 "$here/check_recipe.py" check "$recipe" --artifacts-dir "$artifacts"
echo "$recipe"

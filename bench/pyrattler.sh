# Sourced by bench/solve/run.sh and bench/install/run.sh: sets VENV (a venv with py-rattler,
# created with `pip install py-rattler` if missing) and ENVSHIP (the binary to measure: $ENVSHIP,
# else the release build, built if missing). Needs REPO.
VENV=${PYRATTLER_VENV:-/work/targets/venv-pyrattler}
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import rattler' 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q py-rattler
fi
if [ -z "${ENVSHIP:-}" ]; then
    ENVSHIP=${CARGO_TARGET_DIR:-$REPO/target}/release/envship
    [ -x "$ENVSHIP" ] || (cd "$REPO" && cargo build --release --locked -p envship)
fi
echo "envship: $ENVSHIP ($("$ENVSHIP" --version))"
echo "py-rattler: $("$VENV/bin/pip" show py-rattler 2>/dev/null | sed -n 's/^Version: //p')"

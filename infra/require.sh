# Sourced by infra/run.sh, infra/test.sh and .ci/run. `require_build_tools [tool...]` makes sure the
# build needs are there: cmake and nasm (libjpeg-turbo is built from source), a C and a C++
# compiler (libjpeg-turbo, libwebp) and Python's venv module (the test tools live in venvs); extra
# arguments are further commands, installed from the Debian package of the same name. Missing ones
# are installed with apt-get when running as root; otherwise it prints the command to run and
# returns non-zero.

require_build_tools() {
  local missing=() tool
  for tool in cmake nasm "$@"; do command -v "$tool" >/dev/null || missing+=("$tool"); done
  command -v cc >/dev/null || missing+=(gcc)
  command -v c++ >/dev/null || command -v g++ >/dev/null || missing+=(g++)
  python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
  [ ${#missing[@]} -eq 0 ] && return 0

  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "==> installing missing build tools: ${missing[*]}" >&2
    apt-get update -qq >&2 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null || {
      echo "apt-get could not install: ${missing[*]}" >&2
      return 1
    }
    echo "==> installed: ${missing[*]}" >&2
    return 0
  fi

  echo "missing build tools: ${missing[*]}. Install them (Debian/Ubuntu) with:" >&2
  echo "  sudo apt-get install -y ${missing[*]}" >&2
  return 1
}

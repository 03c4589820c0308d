# The WSGI examples' venv, sourced by scripts/ that serve Python apps:
#
#   . scripts/lib/wsgi-venv.sh
#   wsgi_venv "$root"       # sets WSGI_VENV=$root/target/venv, made or brought up to date
#   wsgi_venv "$root" DIR REQUIREMENTS   # another venv, from another requirements file
#
# Made by Debian's /usr/bin/python3.11, the Python the bridge embeds, with the pinned
# packages of examples/wsgi/requirements.txt (pip installs only what changed, so a second
# run costs a second or two).

wsgi_venv() { # <root> [<venv dir> <requirements file>]
    local root=$1
    WSGI_VENV=${2:-$root/target/venv}
    [ -x "$WSGI_VENV/bin/python3" ] || /usr/bin/python3.11 -m venv "$WSGI_VENV"
    "$WSGI_VENV/bin/pip" install --quiet --disable-pip-version-check \
        -r "${3:-$root/examples/wsgi/requirements.txt}"
}

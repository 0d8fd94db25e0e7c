#!/bin/sh
# /usr/bin/atelier: start the bundle installed under /opt/atelier.
# Qt (when bundled) is the window toolkit on Linux; pywebview would otherwise try GTK first.
export PYWEBVIEW_GUI="${PYWEBVIEW_GUI:-qt}"
exec /opt/atelier/Atelier "$@"

#!/usr/bin/env bash
# Build the packages from this tree with the distributions' own tools: lvs-agent and lvsctl
# as .deb (dpkg-deb, dependencies from dpkg-shlibdeps) and .rpm (rpmbuild, dependencies from
# rpm's ELF scanner; gzip payload, since EL8's rpm 4.14 cannot read zstd).
# One description per package, in packaging/PKG/: `assets` (what it installs, for both
# formats), `control` (section, recommends, description), and its maintainer scripts
# (postinst, postrm for the .deb; rpm-post, rpm-preun, rpm-postun for the .rpm).
# Generates what the packages carry but the tree does not keep: the man pages (lvsctl.1,
# lvs-agent.8), shell completions (bash, zsh, fish) and the units (lvs-agent.service as in
# deploy/, lvs-agent@.service derived from it).
#
# Usage: packaging/build.sh [--version UPSTREAM-REVISION] [--out DIR] [--formats deb,rpm]
#   default: the binaries' own version, revision 1, both formats, into target/packages.
#   Prints the path of each package built, one per line.
set -euo pipefail
cd "$(dirname "$0")/.."
umask 022
VERSION="" OUT=target/packages FORMATS=deb,rpm
while [ $# -gt 0 ]; do
    case "$1" in
        --version) VERSION=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --formats) FORMATS=$2; shift 2 ;;
        *) echo "usage: packaging/build.sh [--version UPSTREAM-REVISION] [--out DIR] [--formats deb,rpm]" >&2; exit 2 ;;
    esac
done
MAINTAINER="lvs-dr maintainers <maintainers@lvs-dr.example.org>"
COPYRIGHT="2026, lvs-dr maintainers"
LICENSE=Apache-2.0
HOMEPAGE=https://example.invalid/lvs-dr

# The asset paths name target/, wherever the developer's cargo puts its builds.
export CARGO_TARGET_DIR=target
# Called from a test (tests/tests/packages.rs), cargo would inherit the test's
# CARGO_MANIFEST_DIR, which ring's build script watches: the whole release build would
# run again, here and once more in the next build from a shell (3.5 min each).
while read -r v; do unset "$v"; done < <(compgen -e | grep -E '^(CARGO_(MANIFEST_|PKG_|CRATE_|BIN_|PRIMARY_)|NEXTEST)')
# The same invocation as tests/vm/run's, so the VM suites reuse these binaries as they are.
cargo build --release --locked -q -p lvsctl -p lvs-agent
BIN=target/release
[ -n "$VERSION" ] || VERSION="$("$BIN/lvsctl" --version | awk '{print $2}')-1"
UPSTREAM=${VERSION%-*} REVISION=${VERSION##*-}
[ "$UPSTREAM" != "$VERSION" ] || { echo "packaging: --version wants UPSTREAM-REVISION, got $VERSION" >&2; exit 2; }
# File times in the packages: the last commit's (reproducible), else now.
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s); export SOURCE_DATE_EPOCH

P=target/package
rm -rf "$P"; mkdir -p "$P/units" "$P/completions" "$P/man1"
"$BIN/lvsctl" man --dir "$P/man1" >/dev/null     # lvsctl.1 and lvsctl-SUBCOMMAND.1
gzip -9n "$P"/man1/*.1
"$BIN/lvs-agent" --man | gzip -9n > "$P/lvs-agent.8.gz"
"$BIN/lvsctl" completions bash > "$P/completions/lvsctl.bash"
"$BIN/lvsctl" completions zsh > "$P/completions/_lvsctl"
"$BIN/lvsctl" completions fish > "$P/completions/lvsctl.fish"
cp deploy/systemd/lvs-agent.service "$P/units/lvs-agent.service"
packaging/instance-unit.sh < deploy/systemd/lvs-agent.service > "$P/units/lvs-agent@.service"
WORK=$P/work; mkdir -p "$WORK" "$OUT"
OUT=$(cd "$OUT" && pwd)

is_elf() { [ "$(od -An -tx1 -N4 "$1" | tr -d ' ')" = 7f454c46 ]; }
# stage PKG FORMAT ROOT: install PKG's assets under ROOT as FORMAT (deb|rpm) places them;
# prints each installed path, then `doc` for documentation or `elf` for a (stripped) binary.
stage() {
    local pkg=$1 fmt=$2 root=$3 src dest mode doc f d n kind
    while read -r src dest mode doc; do
        [[ -z "$src" || "$src" == \#* ]] && continue
        # deb=PATH,rpm=PATH: the two formats' conventions differ (zsh completions).
        [[ "$dest" == *=* ]] && dest=$(tr ',' '\n' <<<"$dest" | sed -n "s/^$fmt=//p")
        n=0
        for f in $src; do   # (unquoted: a pattern expands)
            [ -f "$f" ] || { echo "packaging: $pkg/assets: $src: no such file" >&2; return 1; }
            d=$dest; [[ "$d" == */ ]] && d=$d${f##*/}
            install -D -m "$mode" "$f" "$root$d"
            kind=$doc
            # Symbols out, as dh_strip does: 3 MB less, and what lintian asks of a binary.
            if is_elf "$f"; then
                strip --remove-section=.comment --remove-section=.note --strip-unneeded "$root$d"
                kind=elf
            fi
            echo "$d${kind:+ $kind}"; n=$((n + 1))
        done
        [ "$n" -gt 0 ] || { echo "packaging: $pkg/assets: $src matches nothing" >&2; return 1; }
    done < "packaging/$pkg/assets"
}
field() { sed -n "s/^$2: //p" "packaging/$1/control"; }        # field PKG NAME
long_description() { sed -n '/^Description:/,$p' "packaging/$1/control" | tail -n +2 | sed 's/^ //; s/^\.$//'; }
# The shared libraries an ELF file needs, as Debian dependencies (dpkg-shlibdeps wants a
# source tree around it: a one-line debian/control is enough).
shlibdeps() {
    local t; t=$(mktemp -d)
    mkdir "$t/debian"; printf 'Source: lvs-dr\n\nPackage: lvs-dr\nArchitecture: any\n' > "$t/debian/control"
    (cd "$t" && dpkg-shlibdeps -O "$@" 2>/dev/null) | sed -n 's/^shlibs:Depends=//p'
    rm -rf "$t"
}

deb() { # PKG
    local pkg=$1 root=$WORK/deb-$1 arch s doc
    arch=$(dpkg --print-architecture)
    rm -rf "$root"; mkdir -p "$root/DEBIAN"
    local elves=() path kind
    while read -r path kind; do [ "$kind" != elf ] || elves+=("$PWD/$root$path"); done \
        < <(stage "$pkg" deb "$root")
    doc=$root/usr/share/doc/$pkg; mkdir -p "$doc"
    printf '%s\n' "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/" \
        "Upstream-Name: $pkg" "Source: $HOMEPAGE" "" "Files: *" "Copyright: $COPYRIGHT" "License: $LICENSE" \
        " On Debian systems, the full text of the Apache License 2.0 can be found in" \
        " /usr/share/common-licenses/Apache-2.0." > "$doc/copyright"
    gzip -9n < packaging/changelog > "$doc/changelog.Debian.gz"
    {
        echo "Package: $pkg"
        echo "Version: $VERSION"
        echo "Architecture: $arch"
        echo "Maintainer: $MAINTAINER"
        echo "Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)"
        echo "Depends: $(shlibdeps "${elves[@]}")"
        grep -v '^Description:' "packaging/$pkg/control" | sed '/^ /d'
        echo "Homepage: $HOMEPAGE"
        sed -n '/^Description:/,$p' "packaging/$pkg/control"
    } > "$root/DEBIAN/control"
    for s in preinst postinst prerm postrm; do
        [ ! -f "packaging/$pkg/$s" ] || install -m 755 "packaging/$pkg/$s" "$root/DEBIAN/$s"
    done
    (cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) \
        > "$root/DEBIAN/md5sums"
    find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
    local file=$OUT/${pkg}_${VERSION}_$arch.deb
    dpkg-deb --root-owner-group -Zxz --build "$root" "$file" >/dev/null
    echo "$file"
}

rpm_() { # PKG
    local pkg=$1 top=$WORK/rpm-$1 path doc spec files
    rm -rf "$top"; mkdir -p "$top/SPECS" "$top/tmp"
    files=$(stage "$pkg" rpm "$top/stage")
    spec=$top/SPECS/$pkg.spec
    {
        echo "Name: $pkg"
        echo "Version: $UPSTREAM"
        echo "Release: $REVISION"
        echo "Summary: $(field "$pkg" Description)"
        echo "License: $LICENSE"
        echo "URL: $HOMEPAGE"
        echo "Packager: $MAINTAINER"
        local rec; rec=$(field "$pkg" Recommends)
        [ -z "$rec" ] || echo "Recommends: ${rec//,/}"
        echo; echo "%description"; long_description "$pkg"
        echo; echo "%install"; echo "cp -a '$PWD/$top/stage/.' '%{buildroot}/'"
        echo; echo "%files"
        # The package's own documentation directories are its to remove.
        (cd "$top/stage" && find "usr/share/doc/$pkg" -type d -printf '%%dir /%p\n' 2>/dev/null) || true
        while read -r path doc; do
            if [ "$doc" = doc ]; then echo "%doc $path"; else echo "$path"; fi
        done <<<"$files"
        for s in post preun postun; do
            [ ! -f "packaging/$pkg/rpm-$s" ] || { echo; echo "%$s"; cat "packaging/$pkg/rpm-$s"; }
        done
    } > "$spec"
    rpmbuild -bb --quiet --target "$(uname -m)" \
        --define "_topdir $PWD/$top" --define "_tmppath $PWD/$top/tmp" --define "_rpmdir $OUT" \
        --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
        --define "_binary_payload w9.gzdio" --define "__os_install_post %{nil}" \
        --define "_build_id_links none" --define "debug_package %{nil}" \
        --define "use_source_date_epoch_as_buildtime 1" --define "clamp_mtime_to_source_date_epoch 1" \
        "$spec" > "$top/rpmbuild.log" 2>&1 || { cat "$top/rpmbuild.log" >&2; return 1; }
    echo "$OUT/$pkg-$UPSTREAM-$REVISION.$(uname -m).rpm"
}

rm -f "$OUT"/lvs-agent_*.deb "$OUT"/lvsctl_*.deb "$OUT"/lvs-agent-*.rpm "$OUT"/lvsctl-*.rpm
for pkg in lvs-agent lvsctl; do
    [[ ",$FORMATS," != *,deb,* ]] || deb "$pkg"
    [[ ",$FORMATS," != *,rpm,* ]] || rpm_ "$pkg"
done

# Sourced by the image build scripts: Debian's stock kernel and the modules an initramfs loads.
# Needs apt-get (to fetch the package once), dpkg-deb and busybox (its depmod and nothing of kmod).

NL_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/node-lifecycle"

# The kernel package linux-image-amd64 points at now, e.g. linux-image-6.1.0-56-amd64.
nl_kernel_package() {
  apt-cache depends linux-image-amd64 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'
}

# Prints the folder holding that kernel unpacked (boot/vmlinuz-VERSION, lib/modules/VERSION with a
# modules.dep). Downloads the .deb once into the cache; the unpacked tree is cached next to it.
# Safe when two builds run at once: each works in a temp folder and renames it into place.
nl_kernel_tree() {
  local package deb tree tmp
  package="$(nl_kernel_package)"
  if [ -z "$package" ]; then
    # No apt lists (offline, or never updated): the newest kernel unpacked before will do.
    tree="$(ls -d "$NL_CACHE"/kernels/linux-image-* 2>/dev/null | sort -V | tail -n 1 || true)"
    [ -n "$tree" ] || { echo "debian-kernel: apt-cache names no package for linux-image-amd64 (apt-get update?)" >&2; return 1; }
    echo "$tree"
    return 0
  fi
  tree="$NL_CACHE/kernels/$package"
  if [ ! -d "$tree" ]; then
    mkdir -p "$NL_CACHE/debs" "$NL_CACHE/kernels"
    deb="$(ls "$NL_CACHE/debs/${package}_"*.deb 2>/dev/null | head -n 1 || true)"
    if [ -z "$deb" ]; then
      tmp="$(mktemp -d "$NL_CACHE/debs/.download.XXXXXX")"
      # apt drops privileges to _apt for downloads; a folder of our own it cannot write is fine.
      (cd "$tmp" && apt-get download -q "$package" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2) || true
      deb="$(ls "$tmp/${package}_"*.deb 2>/dev/null | head -n 1 || true)"
      [ -n "$deb" ] || { rm -rf "$tmp"; echo "debian-kernel: apt-get download $package failed" >&2; return 1; }
      mv -f "$deb" "$NL_CACHE/debs/"
      rm -rf "$tmp"
      deb="$NL_CACHE/debs/$(basename "$deb")"
    fi
    tmp="$(mktemp -d "$NL_CACHE/kernels/.unpack.XXXXXX")"
    dpkg-deb -x "$deb" "$tmp"
    busybox depmod -b "$tmp" "$(ls "$tmp/lib/modules")"
    mv -T "$tmp" "$tree" 2>/dev/null || rm -rf "$tmp"
  fi
  echo "$tree"
}

# The kernel version in a tree from nl_kernel_tree.
nl_kernel_version() {
  ls "$1/lib/modules"
}

# Prints the module files (relative to lib/modules/VERSION) to insmod, dependencies first, for the
# given module names. Built-in modules print nothing. modprobe --show-depends would do the same, but
# only kmod has it; busybox's modules.dep is enough for a walk.
nl_module_order() {
  local tree="$1"
  shift
  local dir
  dir="$tree/lib/modules/$(nl_kernel_version "$tree")"
  awk -v wanted="$*" '
    BEGIN { FS = ":[ ]*" }
    {
      file = $1
      name = file; sub(/.*\//, "", name); sub(/\.ko(\.[a-z]+)?$/, "", name); gsub(/-/, "_", name)
      path[name] = file; deps[file] = $2
    }
    function visit(file,   list, n, i) {
      if (file in seen) return
      seen[file] = 1
      n = split(deps[file], list, " ")
      for (i = 1; i <= n; i++) visit(list[i])
      print file
    }
    END {
      n = split(wanted, names, " ")
      for (i = 1; i <= n; i++) {
        name = names[i]; gsub(/-/, "_", name)
        if (name in path) visit(path[name])
        else if (!builtin(name)) { print "debian-kernel: no module " names[i] > "/dev/stderr"; exit 1 }
      }
    }
    function builtin(name,   line, found) {
      found = 0
      while ((getline line < BUILTIN) > 0) { sub(/.*\//, "", line); sub(/\.ko$/, "", line); gsub(/-/, "_", line); if (line == name) found = 1 }
      close(BUILTIN)
      return found
    }
  ' BUILTIN="$dir/modules.builtin" "$dir/modules.dep"
}

# Copies the given modules and their dependencies into ROOT/lib/modules/ and writes
# ROOT/lib/modules/load-order, one file name per line, for /init to insmod in that order.
nl_install_modules() {
  local tree="$1" root="$2"
  shift 2
  local dir files file
  dir="$tree/lib/modules/$(nl_kernel_version "$tree")"
  files="$(nl_module_order "$tree" "$@")" || return 1
  mkdir -p "$root/lib/modules"
  : >"$root/lib/modules/load-order"
  for file in $files; do
    cp "$dir/$file" "$root/lib/modules/"
    basename "$file" >>"$root/lib/modules/load-order"
  done
}

# Packs ROOT into a gzip'd newc cpio (an initramfs) at OUT, written to a temp name and renamed.
nl_pack_initramfs() {
  local root="$1" out="$2"
  (cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -9n >"$out.tmp"
  mv -f "$out.tmp" "$out"
}

# The root of a busybox initramfs with the kernel's MODULES (and their dependencies), INIT as /init and
# the shared udhcpc hook. Usage: nl_initramfs_root TREE ROOT INIT MODULE...
nl_initramfs_root() {
  local tree="$1" root="$2" init="$3"
  shift 3
  nl_busybox_root "$root"
  nl_install_modules "$tree" "$root" "$@" || return 1
  install -m 0755 "$init" "$root/init"
  install -m 0755 "$(dirname "${BASH_SOURCE[0]}")/../installer/udhcpc.script" "$root/usr/share/udhcpc/default.script"
}

# Lays out busybox-static as ROOT/bin with one link per applet, and the folders an /init needs.
nl_busybox_root() {
  local root="$1" applet
  mkdir -p "$root/bin" "$root/dev" "$root/proc" "$root/sys" "$root/tmp" "$root/etc" "$root/mnt" "$root/run" "$root/usr/share/udhcpc"
  ln -sfn bin "$root/sbin"
  ln -sfn ../bin "$root/usr/bin"
  ln -sfn ../bin "$root/usr/sbin"
  cp "$(command -v busybox)" "$root/bin/busybox"
  for applet in $(busybox --list); do
    [ "$applet" = busybox ] || ln -sfn busybox "$root/bin/$applet"
  done
}

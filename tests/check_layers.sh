#!/bin/sh
# check_layers.sh - the rule "one concept, one file" for layer kinds: for
# every kind registered in common/nn/registry.c (its LAYER(x) lines), the
# non-test .c/.h files that name it are its own file common/nn/x.c and the
# registry, and no other.
#
# A file names kind x when, comments aside, it holds the config string "x"
# or an identifier with x as one of its _-separated parts, in any case
# (LAYER_X, layer_x, x_forward). A longer registered name that contains x
# (global_avgpool2d for avgpool2d) is not a mention of x; string contents
# other than exactly "x" (ONNX's "Relu", "layer%d.relu") are not either.
#
# usage: tests/check_layers.sh [ROOT]   (ROOT: the source tree, default .)
# Prints each violation and exits 1 if there is any, else exits 0 silently.
set -eu
root=${1:-.}
registry=$root/common/nn/registry.c
[ -r "$registry" ] || { echo "check_layers: cannot read $registry" >&2; exit 1; }
kinds=$(sed -n 's/^[[:space:]]*LAYER(\([A-Za-z0-9_]*\)).*$/\1/p' "$registry")
[ -n "$kinds" ] || { echo "check_layers: no LAYER(x) line in $registry" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

# Every non-test source file, comments removed (the preprocessor's own
# reading of C, without expanding anything), then once more with the
# contents of string and character literals removed.
(cd "$root" && find . \( -path ./tests -o -path ./.git -o -path './build*' -o -name node_modules \) \
    -prune -o \( -name '*.c' -o -name '*.h' \) -type f -print) | sort > "$tmp/files"
n=0
while read -r f; do
    n=$((n + 1))
    gcc -fpreprocessed -dD -E -P -x c "$root/$f" > "$tmp/$n.code" 2>/dev/null ||
        { echo "check_layers: cannot read $f" >&2; exit 1; }
    sed -E "s/\"([^\"\\\\]|\\\\.)*\"/\"\"/g; s/'([^'\\\\]|\\\\.)*'/0/g" "$tmp/$n.code" > "$tmp/$n.ids"
    echo "$n $f" >> "$tmp/index"
done < "$tmp/files"

bad=0
for k in $kinds; do
    [ -r "$root/common/nn/$k.c" ] || { echo "check_layers: $k: no file common/nn/$k.c"; bad=1; }
    longer=$(for o in $kinds; do
        if [ "$o" != "$k" ]; then case $o in *"$k"*) echo "$o" ;; esac; fi
    done)
    while read -r i f; do
        case $f in "./common/nn/$k.c" | ./common/nn/registry.c) continue ;; esac
        names=0
        grep -qF "\"$k\"" "$tmp/$i.code" && names=1
        cp "$tmp/$i.ids" "$tmp/ids"
        for o in $longer; do
            sed -i "s/$o//Ig" "$tmp/ids"
        done
        grep -qiE "(^|[^A-Za-z0-9_])([A-Za-z0-9_]*_)?$k(_[A-Za-z0-9_]*)?([^A-Za-z0-9_]|\$)" "$tmp/ids" &&
            names=1
        if [ $names = 1 ]; then
            echo "check_layers: ${f#./} names layer kind $k (only common/nn/$k.c and the registry may)"
            bad=1
        fi
    done < "$tmp/index"
done
exit $bad

# kl_rows.sh - sourced by bench/imatrix_vs_llamacpp.sh and bench/calib_vs_llama.sh.
# kl_rows JSON: the markdown table of a `shrink compare --json` result, one row per compared
# file (models 1, 2, ...) named by the lines of stdin; the last column is each file's mean KL
# over model 2's (llama-quantize --imatrix in both scripts). Needs $json_get (tests/json_get).
kl_rows() {
    echo "| file | bits/weight | KL mean | KL p99 | Δppl % | same top-1 % | KL / llama-quantize --imatrix |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    kl_json=$1
    ref=$("$json_get" "$kl_json" models.2.kl_mean)
    i=1
    while IFS= read -r name; do
        set -- $("$json_get" "$kl_json" models.$i.bits_per_weight models.$i.kl_mean \
            models.$i.kl_p99 models.$i.delta_ppl_pct models.$i.top1_same_pct)
        awk -v n="$name" -v b="$1" -v k="$2" -v p="$3" -v d="$4" -v s="$5" -v r="$ref" \
            'BEGIN { printf "| %s | %.2f | %.6f | %.5f | %+.3f | %.2f | %.3f |\n", n, b, k, p, d, s, k / r }'
        i=$((i + 1))
    done
}

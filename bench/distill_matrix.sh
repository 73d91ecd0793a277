#!/bin/sh
# distill_matrix.sh - the results matrix of docs/distillation.md (issue 12, point 5):
# for each teacher (mix-llama-22m-long, mix-gpt2-30m, mix-llama-22m) and the same half-depth
# student shape (3 of 6 layers), steps, data and seed: a student trained from scratch with the
# cross-entropy, the student cut from the teacher with the cross-entropy only, distilled (soft,
# alpha / tau sweep), weak, top-32 with the teacher cache, and synthetic-only; held-out ppl and
# KL to the teacher every 20 steps (--json lines), then one `shrink compare` table per teacher.
#
#   sh bench/distill_matrix.sh [OUTDIR]        (default runs/matrix)
#
# Environment: SHRINK (binary, default build/shrink), SHARED (default ../shared), STEPS (80),
# TEACHERS (default "L:mix-llama-22m-long:llama g:mix-gpt2-30m:gpt2 m:mix-llama-22m:llama"),
# PHASES (default "1 2 6 3 4 5 7"; 6 = the pipeline with a narrower student, PIPE_TOKENS; 7 =
# throughput: shrink train on the student alone, distill soft (the teacher run on every batch),
# distill top-32 from the cache, and the teacher's forward alone (shrink ppl at ctx 64),
# interleaved, 3 rounds of 16 steps, mix-llama-22m-long only). Runs strictly one at a time, `nice -n 10`, one thread. A run
# whose JSON already holds its summary is skipped, so the script resumes where it stopped.
# log.txt in OUTDIR names the commit, the machine and the load average beside every run.
set -eu
OUT=${1:-runs/matrix}
SHRINK=${SHRINK:-build/shrink}
SHARED=${SHARED:-../shared}
STEPS=${STEPS:-80}
PHASES=${PHASES:-1 2 6 3 4 5 7}
PIPE_TOKENS=${PIPE_TOKENS:-40960}
M=$SHARED/models
C=$SHARED/data/corpus
mkdir -p "$OUT"
LOG=$OUT/log.txt
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
cpu=$(lscpu | sed -n 's/^Model name: *//p')
TOK=$((STEPS * 4 * 64))
echo "# $(date -u +%FT%TZ) commit $commit, $cpu, $(nproc) cores, steps $STEPS ($TOK tokens), binary $SHRINK" >> "$LOG"

run() {  # run NAME CMD...: skip when NAME.json already has its summary
    name=$1; shift
    [ -f "$OUT/$name.done" ] && return 0
    echo "$(date -u +%T) start $name load $(cut -d' ' -f1-3 /proc/loadavg): $*" >> "$LOG"
    if nice -n 10 "$@" > "$OUT/$name.json" 2> "$OUT/$name.err"; then
        echo "$(date -u +%T) done  $name load $(cut -d' ' -f1-3 /proc/loadavg)" >> "$LOG"
        touch "$OUT/$name.done"
    else
        echo "$(date -u +%T) FAIL  $name (exit $?)" >> "$LOG"
    fi
}

# per teacher: short name, model folder, token suffix
teachers=${TEACHERS:-L:mix-llama-22m-long:llama g:mix-gpt2-30m:gpt2 m:mix-llama-22m:llama}

prep() {  # tokens and students of one teacher
    p=$1 t=$2 tk=$3
    [ -f "$OUT/tr80k.$tk.tok" ] || { head -c 80000 "$C/train.txt" > "$OUT/tr80k.txt";
        $SHRINK tokenize "$OUT/tr80k.txt" "$OUT/tr80k.$tk.tok" --model "$M/$t" > /dev/null; }
    [ -f "$OUT/test.$tk.tok" ] || $SHRINK tokenize "$C/test.txt" "$OUT/test.$tk.tok" --model "$M/$t" > /dev/null
    [ -f "$OUT/${p}3.gguf" ] || $SHRINK student "$M/$t" "$OUT/${p}3.gguf" --layers 3 --threads 1 > /dev/null
    [ -f "$OUT/${p}3r.gguf" ] || $SHRINK student "$M/$t" "$OUT/${p}3r.gguf" --layers 3 --init random \
        --seed 1 --dtype f16 --threads 1 > /dev/null
}

distill() {  # distill NAME PREFIX TEACHER TOKSUFFIX STUDENT DATA OPTIONS...
    name=$1 p=$2 t=$3 tk=$4 st=$5 data=$6; shift 6
    run "$name" $SHRINK distill --teacher "$M/$t" --student "$OUT/$st" --data "$data" \
        --valid "$OUT/test.$tk.tok" --out "$OUT/$name" --to gguf --steps "$STEPS" --batch 4 --ctx 64 \
        --lr 1e-3 --warmup $((STEPS / 10)) --seed 1 --threads 1 --eval-every 20 --eval-windows 16 \
        --json --no-manifest "$@"
}

for tt in $teachers; do
    prep "${tt%%:*}" "$(echo "$tt" | cut -d: -f2)" "${tt##*:}"
done

for phase in $PHASES; do
    if [ "$phase" = 6 ]; then
        # the pipeline with a half-depth, narrower student: 3 layers, hidden 192, q4_0
        # (hidden 224 at q4_0 is 6.9x smaller than the teacher's f16 file, 192 is 7.9x)
        [ -f "$OUT/train.llama.tok" ] || $SHRINK tokenize "$C/train.txt" "$OUT/train.llama.tok" \
            --model "$M/mix-llama-22m-long" > /dev/null
        [ -f "$OUT/pipe192.done" ] || rm -rf "$OUT/pipe192"
        run pipe192 $SHRINK pipeline teacher-student-4bit "$M/mix-llama-22m-long" "$OUT/pipe192" \
            --student-layers 3 --student-hidden 192 --scheme q4_0 --data "$OUT/train.llama.tok" \
            --tokens "$PIPE_TOKENS" --eval "$C/test.txt" --no-speed --threads 1
        continue
    fi
    if [ "$phase" = 7 ]; then
        t=mix-llama-22m-long d=$OUT/tr80k.llama.tok
        [ -f "$OUT/fwd.txt" ] || head -c 20000 "$OUT/tr80k.txt" > "$OUT/fwd.txt"
        com="--steps 16 --batch 4 --ctx 64 --lr 1e-3 --seed 1 --threads 1 --json --no-manifest"
        for r in 1 2 3; do
            # shellcheck disable=SC2086
            run "sp_train_$r" $SHRINK train "$OUT/L3.gguf" --data "$d" --out "$OUT/sp_train_$r" $com
            # shellcheck disable=SC2086
            run "sp_soft_$r" $SHRINK distill --teacher "$M/$t" --student "$OUT/L3.gguf" --data "$d" \
                --out "$OUT/sp_soft_$r" --alpha 0.9 $com
            # shellcheck disable=SC2086
            run "sp_cache_$r" $SHRINK distill --teacher "$M/$t" --student "$OUT/L3.gguf" --data "$d" \
                --out "$OUT/sp_cache_$r" --alpha 0.9 --top-k 32 --teacher-cache "$OUT/tc_L" $com
            run "sp_fwd_$r" $SHRINK ppl "$M/$t" "$OUT/fwd.txt" --ctx 64 --stride 64 --threads 1 --json
        done
        continue
    fi
    for tt in $teachers; do
        p=${tt%%:*} t=$(echo "$tt" | cut -d: -f2) tk=${tt##*:}
        d=$OUT/tr80k.$tk.tok
        case $phase in
        1)  distill "${p}_ce" "$p" "$t" "$tk" "${p}3.gguf" "$d" --alpha 0
            distill "${p}_soft9" "$p" "$t" "$tk" "${p}3.gguf" "$d" --alpha 0.9 ;;
        2)  distill "${p}_scratch" "$p" "$t" "$tk" "${p}3r.gguf" "$d" --alpha 0
            distill "${p}_weak" "$p" "$t" "$tk" "${p}3.gguf" "$d" --alpha 0.5 --mode weak
            distill "${p}_top32" "$p" "$t" "$tk" "${p}3.gguf" "$d" --alpha 0.9 --top-k 32 \
                --teacher-cache "$OUT/tc_$p" ;;
        3)  [ -f "$OUT/syn.$p.tok" ] || run "syn_$p" $SHRINK synth "$M/$t" "$OUT/syn.$p.tok" \
                --tokens "$TOK" --seed 1 --threads 1 --json
            distill "${p}_syn" "$p" "$t" "$tk" "${p}3.gguf" "$OUT/syn.$p.tok" --alpha 0.9 ;;
        4)  distill "${p}_soft5" "$p" "$t" "$tk" "${p}3.gguf" "$d" --alpha 0.5
            distill "${p}_soft9t2" "$p" "$t" "$tk" "${p}3.gguf" "$d" --alpha 0.9 --temperature 2 ;;
        5)  # held-out: one compare per teacher, 4096 tokens of test.txt (ctx 512, sliding)
            set -- "$OUT/${p}3r.gguf" "$OUT/${p}3.gguf"
            for r in scratch ce soft9 soft5 soft9t2 weak top32 syn; do
                [ -f "$OUT/${p}_$r/model.gguf" ] && set -- "$@" "$OUT/${p}_$r/model.gguf"
            done
            run "cmp_$p" $SHRINK compare "$M/$t" "$@" --text "$C/test.txt" --tokens 4096 \
                --no-speed --threads 1 ;;
        esac
    done
done

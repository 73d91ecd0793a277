#!/bin/sh
# Runs every test executable in BUILD/tests twice (dispatched kernels, then SHRINK_KERNELS=ref),
# then tests/test_cli.sh and tests/test_train_cli.sh against BUILD/shrink, then the include
# layer check tests/test_layers.sh, then the reliability suite tests/reliability/test_*.sh. Exit status 77 means skipped.
# Prints "N passed, N failed, N skipped" and fails if anything failed.
build=${1:-build}
pass=0; fail=0; skip=0
run() {
    label=$1; shift
    "$@"; rc=$?
    if [ $rc -eq 0 ]; then pass=$((pass+1)); elif [ $rc -eq 77 ]; then skip=$((skip+1));
    else fail=$((fail+1)); echo "FAILED: $label (exit $rc)"; fi
}
for t in "$build"/tests/test_*; do
    [ -x "$t" ] || continue
    run "$t" "$t"
    run "$t [SHRINK_KERNELS=ref]" env SHRINK_KERNELS=ref "$t"
done
if [ -f tests/test_cli.sh ]; then run "test_cli.sh" sh tests/test_cli.sh "$build/shrink"; fi
if [ -f tests/test_library_hygiene.sh ]; then
    run "test_library_hygiene.sh" sh tests/test_library_hygiene.sh "$build"
fi
if [ -f tests/test_eval_cli.sh ]; then run "test_eval_cli.sh" sh tests/test_eval_cli.sh "$build/shrink"; fi
if [ -f tests/test_quant_ux.sh ]; then run "test_quant_ux.sh" sh tests/test_quant_ux.sh "$build/shrink"; fi
if [ -f tests/test_train_cli.sh ]; then run "test_train_cli.sh" sh tests/test_train_cli.sh "$build/shrink"; fi
if [ -f tests/test_distill_cli.sh ]; then run "test_distill_cli.sh" sh tests/test_distill_cli.sh "$build/shrink"; fi
if [ -f tests/test_imatrix_cli.sh ]; then run "test_imatrix_cli.sh" sh tests/test_imatrix_cli.sh "$build/shrink"; fi
if [ -f tests/test_shard.sh ]; then run "test_shard.sh" sh tests/test_shard.sh "$build/shrink"; fi
if [ -f tests/test_prune_structured.sh ]; then run "test_prune_structured.sh" sh tests/test_prune_structured.sh "$build/shrink"; fi
if [ -f tests/test_lora_cli.sh ]; then run "test_lora_cli.sh" sh tests/test_lora_cli.sh "$build/shrink"; fi
if [ -f tests/test_qat_cli.sh ]; then run "test_qat_cli.sh" sh tests/test_qat_cli.sh "$build/shrink"; fi
if [ -f tests/test_sparse_cli.sh ]; then run "test_sparse_cli.sh" sh tests/test_sparse_cli.sh "$build/shrink"; fi
if [ -f tests/test_manifest.sh ]; then run "test_manifest.sh" sh tests/test_manifest.sh "$build/shrink"; fi
if [ -f tests/test_report.sh ]; then run "test_report.sh" sh tests/test_report.sh "$build/shrink"; fi
if [ -f tests/test_report_browser.sh ]; then run "test_report_browser.sh" sh tests/test_report_browser.sh "$build/shrink"; fi
if [ -f tests/test_gptq_cli.sh ]; then run "test_gptq_cli.sh" sh tests/test_gptq_cli.sh "$build/shrink"; fi
if [ -f tests/test_awq_cli.sh ]; then run "test_awq_cli.sh" sh tests/test_awq_cli.sh "$build/shrink"; fi
if [ -f tests/test_lowrank_cli.sh ]; then run "test_lowrank_cli.sh" sh tests/test_lowrank_cli.sh "$build/shrink"; fi
if [ -f tests/test_layers.sh ]; then run "test_layers.sh" sh tests/test_layers.sh; fi
if [ -f tests/test_student_cli.sh ]; then run "test_student_cli.sh" sh tests/test_student_cli.sh "$build/shrink"; fi
if [ -f tests/test_synth_cli.sh ]; then run "test_synth_cli.sh" sh tests/test_synth_cli.sh "$build/shrink"; fi
if [ -f tests/test_teacher_cache.sh ]; then run "test_teacher_cache.sh" sh tests/test_teacher_cache.sh "$build/shrink"; fi
if [ -f tests/test_pipeline_cli.sh ]; then run "test_pipeline_cli.sh" sh tests/test_pipeline_cli.sh "$build/shrink"; fi
if [ -f tests/test_recipe_cli.sh ]; then run "test_recipe_cli.sh" sh tests/test_recipe_cli.sh "$build/shrink"; fi
if [ -f tests/test_plan_cli.sh ]; then run "test_plan_cli.sh" sh tests/test_plan_cli.sh "$build/shrink"; fi
if [ -f tests/test_recipe_try.sh ]; then run "test_recipe_try.sh" sh tests/test_recipe_try.sh "$build/shrink"; fi
if [ -f tests/test_lora_compare_cli.sh ]; then run "test_lora_compare_cli.sh" sh tests/test_lora_compare_cli.sh "$build/shrink"; fi
run "test_skip_rule.sh" sh tests/test_skip_rule.sh
if [ -f tests/test_docs.sh ]; then run "test_docs.sh" sh tests/test_docs.sh "$build/shrink"; fi
if [ -f tests/test_json_keys.sh ]; then run "test_json_keys.sh" sh tests/test_json_keys.sh "$build/shrink"; fi
for t in tests/reliability/test_*.sh; do
    [ -f "$t" ] && run "$t" sh "$t" "$build/shrink"
done
echo "test programs: $pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]

"""bench/roofline end to end, in its quick mode (small sizes, so the figures
say little): one JSON object with a positive f32 GEMM peak and read
bandwidth, a bf16 peak that is positive or null, and what each was measured
on; --read-mib sets the read's buffer.

usage: check_roofline.py ROOFLINE
"""
import json, subprocess, sys

done = subprocess.run([sys.argv[1], "--quick", "--runs", "2", "--read-mib", "8"], capture_output=True, text=True)
if done.returncode != 0:
    sys.exit(f"FAIL: roofline exited {done.returncode}: {done.stderr}")
figures = json.loads(done.stdout)
problems = []
for rate, workload in (("f32_gemm_gflops", "f32_gemm_workload"), ("read_gbs", "read_workload")):
    if not isinstance(figures.get(rate), (int, float)) or figures[rate] <= 0:
        problems.append(f"{rate} is not a positive number: {figures.get(rate)}")
    if not isinstance(figures.get(workload), str) or not figures[workload]:
        problems.append(f"{workload} is missing")
bf16 = figures.get("bf16_gemm_gflops", "absent")
if bf16 is not None and (not isinstance(bf16, (int, float)) or bf16 <= 0):
    problems.append(f"bf16_gemm_gflops is neither null nor a positive number: {bf16}")
if figures.get("read_workload") != "sum of 8 MiB":
    problems.append(f"read_workload is {figures.get('read_workload')}, not --read-mib 8's buffer")
if figures.get("threads") != 2:
    problems.append(f"threads is {figures.get('threads')}, not KILN_NUM_THREADS's 2")
if problems:
    sys.exit("FAIL: " + "; ".join(problems) + "\n" + done.stdout)
print("roofline ok:", done.stdout.replace("\n", " "))

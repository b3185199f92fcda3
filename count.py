import json, os, sys
os.environ["AWS_ENDPOINT_URL"] = "http://127.0.0.1:6431"
from modelcycle.store.predictions import read_log
log = read_log("s3://team/mc", "bc")
ids = set(log["request_id"])
ans = json.load(open(sys.argv[1]))
print(f"answered {len(ans)}, in the log {sum(1 for a in ans if a in ids)}, missing {sum(1 for a in ans if a not in ids)}; log rows {len(log)}")

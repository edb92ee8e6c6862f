import json, os, sys
root = sys.argv[1]
rows = []
for m in ["fine", "kind", "wave", "scratch"]:
    for d in [2, 6]:
        p = f"{root}/Outbox/ft-{m}-d{d}/metrics.json" if len(sys.argv) < 3 else f"{root}/Outbox/{sys.argv[2].format(m=m,d=d)}/metrics.json"
        if not os.path.exists(p): rows.append((m, d, None)); continue
        j = json.load(open(p)); mm = j["metrics"]["metrics"]
        rows.append((m, d, dict(fd=mm.get("fd_effnet_lite0",{}).get("value"), sfd=mm.get("sfd_effnet_lite0",{}).get("value"),
            prec=mm.get("precision_effnet_lite0",{}).get("value"), rec=mm.get("recall_effnet_lite0",{}).get("value"),
            loss=j["loss"]["final_10_percent_mean"], steps=j["steps"], params=j["parameters"], lg=j.get("learngene_bytes"), secs=j["train_seconds"])))
print("| init | depth | FD | sFD | precision | recall | final loss | steps | params | learngene bytes | train s |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for m, d, r in rows:
    if r is None: print(f"| {m} | {d} | (missing) |"); continue
    print(f"| {m} | {d} | {r['fd']:.1f} | {r['sfd']:.1f} | {r['prec']:.3f} | {r['rec']:.3f} | {r['loss']:.4f} | {r['steps']} | {r['params']} | {r['lg']} | {r['secs']:.0f} |")

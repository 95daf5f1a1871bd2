// A fake API server (test double, test/k8s/fake-apiserver.ts) seeded with an opted-in bookinfo
// namespace and the reviews-v2 pod, plus a kubeconfig file pointing at it: the start of every
// test that runs `meshtune controller` as a process.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FakeApiServer } from "../k8s/fake-apiserver.js";
import { deploymentPod } from "../fixtures/pods.js";

export async function fakeBookinfo(): Promise<{ fake: FakeApiServer; kubeconfig: string }> {
  const fake = await new FakeApiServer().start();
  fake.put("namespaces", { metadata: { name: "bookinfo", labels: { "meshtune.io/enabled": "true" } } });
  fake.put("pods", deploymentPod("bookinfo", "reviews-v2", "7bf8c9648f", "2lcgn", { app: "reviews", version: "v2" }));
  const kubeconfig = join(mkdtempSync(join(tmpdir(), "meshtune-kc-")), "config");
  writeFileSync(kubeconfig, fake.kubeconfig());
  return { fake, kubeconfig };
}

// Validate generated objects against Istio's published CRD schemas
// (@kubernetes-models/istio is generated from the Istio CRD OpenAPI schemas).
import { Sidecar } from "@kubernetes-models/istio/networking.istio.io/v1beta1/Sidecar";
import { ServiceEntry } from "@kubernetes-models/istio/networking.istio.io/v1beta1/ServiceEntry";
import type { SidecarObj } from "./generate.js";
import type { ServiceEntryObj } from "./service-entry.js";

/** Throws with a one-line reason when the object does not match Istio's schema. */
export function validateSidecar(s: SidecarObj): void {
  // The model classes take their own shape; the generated object is structurally the same.
  new Sidecar(s as unknown as ConstructorParameters<typeof Sidecar>[0]).validate();
}

export function validateServiceEntry(s: ServiceEntryObj): void {
  new ServiceEntry(s as unknown as ConstructorParameters<typeof ServiceEntry>[0]).validate();
}

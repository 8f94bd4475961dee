"""Mapping: where an integer graph's neurons and synapses go on a target. Node resource models (resources), core
packing under every per-core limit (packing), mesh and chip arrangement (mesh), placement and routes (placement)
and the placement options (placement_modes). Sits between the passes and the simulator; reads only the IR and
the target."""

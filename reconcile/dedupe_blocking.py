"""Candidate pairs of an incremental dedupe run: the pairs reconcile.blocking.candidate_pairs
would produce on the current population, built from the changed ("focus") records' blocks plus
the stored pairs of unchanged records.

Block keys are 64-bit hashes of the key columns (0 = empty). Block sizes, and so the cap, are
counted over the whole current population; a block that crossed the cap since the stored run
gains or loses its unchanged pairs; the "name alone, sparse records" pass is recomputed whole.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from reconcile.blocking import DEFAULT_PASSES, BlockingPass, PassStats
from reconcile.keys import EMPTY_PIECE, ID_PIECES, id_piece_text, key_text
from reconcile.privacy import mask_ids_in_text

_K1 = np.uint64(0x9E3779B97F4A7C15)
_K2 = np.uint64(0xC2B2AE3D27D4EB4F)


def hash_strings(values: np.ndarray) -> np.ndarray:
    """Stable 64-bit hash per string ('' -> 0), computed once per distinct value."""
    vals = np.asarray(values, dtype=object)
    if vals.size == 0:
        return np.zeros(0, np.uint64)
    codes, uniq = pd.factorize(vals)
    u = np.asarray(uniq, dtype=object)
    uh = pd.util.hash_array(u, categorize=False).astype(np.uint64)
    uh[uh == 0] = np.uint64(1)
    uh[u == ""] = np.uint64(0)
    return uh[codes]


def key_hashes(column: pd.Series) -> np.ndarray:
    """``hash_strings`` of a blocking key column: a text key's values as text, an integer key's
    (the ID pieces, reconcile.keys.ID_PIECES) from its codes, EMPTY_PIECE -> 0 (empty)."""
    arr = column.to_numpy()
    if arr.dtype.kind in "iu":
        h = pd.util.hash_array(arr.astype(np.int64), categorize=False).astype(np.uint64)
        h[h == 0] = np.uint64(1)
        h[arr == EMPTY_PIECE] = np.uint64(0)
        return h
    return hash_strings(column.astype(str).to_numpy(object))


def pass_hash(keyhash: dict[str, np.ndarray], p: BlockingPass) -> np.ndarray:
    """One 64-bit key per record for a blocking pass; 0 where any of its columns is empty."""
    h = keyhash[p.columns[0]].copy()
    empty = h == 0
    with np.errstate(over="ignore"):
        for c in p.columns[1:]:
            g = keyhash[c]
            empty |= g == 0
            h = (h * _K1) ^ (g * _K2)
            h ^= h >> np.uint64(29)
    h[h == 0] = np.uint64(1)
    h[empty] = np.uint64(0)
    return h


def blocking_columns(passes=DEFAULT_PASSES) -> list[str]:
    return sorted({c for p in passes for c in p.columns})


def skipped_labels(std: pd.DataFrame, keyhash: dict[str, np.ndarray], block_cap: int) -> dict[str, dict[int, str]]:
    """Readable key of every block a pass skips (kept in the state for later warnings)."""
    out: dict[str, dict[int, str]] = {}
    for p in DEFAULT_PASSES:
        h = pass_hash(keyhash, p)
        valid = h != 0
        out[p.name] = {}
        if not valid.any():
            continue
        uniq, first, cnt = np.unique(h[valid], return_index=True, return_counts=True)
        pos = np.nonzero(valid)[0][first]
        cap = p.block_cap(block_cap)
        big = cnt * (cnt - 1) // 2 > cap
        out[p.name] = {int(hv): "\x1f".join(key_text(std, c, ps) for c in p.columns)
                       for hv, ps in zip(uniq[big].tolist(), pos[big].tolist())}
    return out


@dataclass
class Blocked:
    li: np.ndarray
    ri: np.ndarray
    passes: np.ndarray
    reused: np.ndarray                 # bool per pair: levels come from the state
    reused_index: np.ndarray           # state pair index of each reused pair, in order
    stats: list[PassStats]
    labels: dict[str, dict[int, str]]
    cap_flips: int = 0                 # blocks that crossed the cap since the state


def _codes(h: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dense block codes (-1 empty) numbered in order of first appearance (as the text keys of
    reconcile.blocking are), the distinct keys and their counts."""
    valid = h != 0
    code = np.full(len(h), -1, np.int64)
    if not valid.any():
        return code, np.zeros(0, np.uint64), np.zeros(0, np.int64)
    vpos = np.nonzero(valid)[0]
    c, uniq = pd.factorize(h[vpos])
    code[vpos] = c
    return code, np.asarray(uniq, dtype=np.uint64), np.bincount(c, minlength=len(uniq)).astype(np.int64)


def _in(values: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Boolean mask: values found in wanted (hash lookups; numpy's isin sorts)."""
    if not len(wanted) or not len(values):
        return np.zeros(len(values), bool)
    return pd.Index(wanted).get_indexer(values) >= 0


def _join_focus(code: np.ndarray, ok_code: np.ndarray, left_mask: np.ndarray, right_mask: np.ndarray,
                focus: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i < j) with code[i] == code[j], ok_code[code] True, i in left_mask, j in right_mask,
    and at least one of them in ``focus``."""
    valid = code >= 0
    okr = valid & ok_code[np.maximum(code, 0)]
    fl = okr & left_mask & focus
    fr = okr & right_mask & focus
    out_i, out_j = [], []
    for fmask, other, focus_left in ((fl, okr & right_mask, True), (fr, okr & left_mask, False)):
        fpos = np.nonzero(fmask)[0]
        if not fpos.size:
            continue
        touched = np.zeros(len(ok_code), bool)
        touched[code[fpos]] = True
        opos = np.nonzero(other & touched[np.maximum(code, 0)])[0]
        fpos = fpos[np.argsort(code[fpos], kind="stable")]
        opos = opos[np.argsort(code[opos], kind="stable")]
        fc, oc = code[fpos], code[opos]
        ucodes, fstart, fcnt = np.unique(fc, return_index=True, return_counts=True)
        ostart = np.searchsorted(oc, ucodes)
        ocnt = np.searchsorted(oc, ucodes, side="right") - ostart
        per = fcnt * ocnt
        total = int(per.sum())
        if not total:
            continue
        g = np.repeat(np.arange(len(ucodes)), per)
        off = np.arange(total) - np.repeat(np.cumsum(per) - per, per)
        x = fpos[fstart[g] + off // ocnt[g]]
        y = opos[ostart[g] + off % ocnt[g]]
        i, j = (x, y) if focus_left else (y, x)
        keep = i < j
        out_i.append(i[keep])
        out_j.append(j[keep])
    return _joined_pairs(out_i, out_j)


def _joined_pairs(out_i: list[np.ndarray], out_j: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The pair lists of several blocks as two arrays (empty int64 arrays when there are none)."""
    if not out_i:
        e = np.zeros(0, np.int64)
        return e, e
    return np.concatenate(out_i), np.concatenate(out_j)


def _within_blocks(code: np.ndarray, blocks: np.ndarray, members_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All pairs (i < j) of members inside the given blocks."""
    if not len(blocks):
        e = np.zeros(0, np.int64)
        return e, e
    mark = np.zeros(int(code.max()) + 1, bool)
    mark[blocks] = True
    pos = np.nonzero(members_mask & (code >= 0) & mark[np.maximum(code, 0)])[0]
    pos = pos[np.argsort(code[pos], kind="stable")]
    c = code[pos]
    _, start, cnt = np.unique(c, return_index=True, return_counts=True)
    out_i, out_j = [], []
    for s, k in zip(start.tolist(), cnt.tolist()):
        m = pos[s:s + k]
        a, b = np.triu_indices(k, 1)
        out_i.append(m[a])
        out_j.append(m[b])
    return _joined_pairs(out_i, out_j)


def _label(labels: dict[int, str], hv: int, p: BlockingPass, fstd: pd.DataFrame | None, pop,
           members: np.ndarray, posmap: dict[int, int]) -> str:
    """Readable key of a skipped block: stored, else from a changed member, else from the population."""
    if hv in labels:
        return labels[hv]
    for pos in members.tolist():
        if fstd is not None and pos in posmap:
            return "\x1f".join(key_text(fstd, c, posmap[pos]) for c in p.columns)
    if len(members) and all(c in pop.cols or (c in ID_PIECES and "id_clean" in pop.cols) for c in p.columns):
        m = members[0]
        return "\x1f".join(id_piece_text(c, str(pop.cols["id_clean"][m])) if c in ID_PIECES
                            else str(pop.cols[c][m]) for c in p.columns)
    return "?"


def incremental_candidates(keyhash: dict[str, np.ndarray], sparse: np.ndarray, focus: np.ndarray,
                           old_to_new: np.ndarray, state, block_cap: int, fstd: pd.DataFrame | None,
                           labels: dict[str, dict[int, str]], pop) -> Blocked:
    """The candidate pairs a full run (reconcile.blocking.candidate_pairs) would produce on this
    population, from the focus records' blocks plus the state's pairs of unchanged records."""
    n = len(focus)
    passes = DEFAULT_PASSES
    posmap = {int(p): t for t, p in enumerate(fstd["_pos"].tolist())} if fstd is not None else {}
    # the state's pairs between two unchanged records, in current positions (kept in their order)
    ni, nj = old_to_new[state.li], old_to_new[state.ri]
    keep = (ni >= 0) & (nj >= 0)
    src_idx = np.nonzero(keep)[0]
    ci, cj, cm = ni[src_idx], nj[src_idx], state.passes[src_idx].astype(np.uint16)
    del ni, nj, keep
    flipped = ci > cj
    if flipped.any():
        ci, cj = np.where(flipped, cj, ci), np.where(flipped, ci, cj)
    # the old population = the alive records + the dead ones (removed, changed, refilled): old block
    # sizes are the new ones minus focus members plus dead members (no pass over the old population)
    alive = old_to_new >= 0
    dead = np.nonzero(~alive)[0]
    dead_keyhash = {c: v[dead] for c, v in state.keyhash.items()}
    stats: list[PassStats] = []
    new_labels: dict[str, dict[int, str]] = {}
    f_codes, f_masks = [], []
    add_codes, add_masks = [], []
    flips = 0
    everyone = np.ones(n, bool)
    for bit, p in enumerate(passes):
        st = PassStats(p.name, p.description)
        cap = p.block_cap(block_cap)
        h = pass_hash(keyhash, p)
        code, uniq, cnt = _codes(h)
        plabels = labels.get(p.name, {})
        keep_labels: dict[int, str] = {}
        bitv = np.uint16(1 << bit)
        if p.only_sparse:
            # recomputed whole: J1 = sparse left records, J2 = sparse right records (as _join does)
            sp_cnt = np.bincount(code[(code >= 0) & sparse], minlength=len(uniq)) if len(uniq) else np.zeros(0, np.int64)
            big1 = sp_cnt * (sp_cnt - 1) // 2 > cap
            big2 = cnt * (cnt - 1) // 2 > cap
            i1, j1 = _join_focus(code, ~big1, sparse, everyone, sparse)
            i1, j1 = _restrict(i1, j1, sparse, None)
            i2, j2 = _join_focus(code, ~big2, everyone, sparse, sparse)
            i2, j2 = _restrict(i2, j2, None, sparse)
            pi, pj = np.concatenate([i1, i2]), np.concatenate([j1, j2])
            for big, nrec_arr in ((big1, sp_cnt + cnt), (big2, cnt + sp_cnt)):
                for c_ in np.nonzero(big)[0].tolist():          # codes are in order of first appearance
                    st.skipped_blocks += 1
                    st.skipped_records += int(nrec_arr[c_])
                    hv = int(uniq[c_])
                    lab = _label(plabels, hv, p, fstd, pop, _members(code, c_, focus, plabels, hv), posmap)
                    keep_labels[hv] = lab
                    size = int(cnt[c_] * (cnt[c_] - 1) // 2) if big is big2 else int(sp_cnt[c_] * (sp_cnt[c_] - 1) // 2)
                    st.warnings.append(f"{p.name}: block '{mask_ids_in_text(lab.replace(chr(31), ' + '))}' skipped: "
                                       f"{int(nrec_arr[c_])} records, {size} pairs over the cap")
            cm &= ~bitv
            codes_all = np.unique(pi * n + pj)
            add_codes.append(codes_all)
            add_masks.append(np.full(len(codes_all), bitv, np.uint16))
        else:
            big = cnt * (cnt - 1) // 2 > cap
            pi, pj = _join_focus(code, ~big, everyone, everyone, focus)
            codes_f = np.unique(pi * n + pj)
            f_codes.append(codes_f)
            f_masks.append(np.full(len(codes_f), bitv, np.uint16))
            sk = np.nonzero(big)[0]
            st.skipped_blocks = int(len(sk))
            st.skipped_records = int((2 * cnt[sk]).sum())
            for c_ in sk.tolist():
                hv = int(uniq[c_])
                lab = _label(plabels, hv, p, fstd, pop, _members(code, c_, focus, plabels, hv), posmap)
                keep_labels[hv] = lab
                if p.cap is None:
                    st.warnings.append(f"{p.name}: block '{mask_ids_in_text(lab.replace(chr(31), ' + '))}' skipped: "
                                       f"{int(2 * cnt[c_])} records, {int(cnt[c_] * (cnt[c_] - 1) // 2)} pairs over the cap")
            # blocks whose size crossed the cap since the state: fix the unchanged pairs in them
            dead_h = pass_hash(dead_keyhash, p) if len(dead) else np.zeros(0, np.uint64)
            focus_h = h[focus]
            touched = pd.unique(np.concatenate([focus_h, dead_h]))
            touched = touched[touched != 0]
            if touched.size:
                tix = pd.Index(touched)
                at = pd.Index(uniq).get_indexer(touched) if len(uniq) else np.full(len(touched), -1)
                found = at >= 0
                new_cnt = np.where(found, cnt[np.maximum(at, 0)] if len(cnt) else 0, 0)
                fi = tix.get_indexer(focus_h[focus_h != 0])
                di = tix.get_indexer(dead_h[dead_h != 0])
                old_cnt = (new_cnt - np.bincount(fi, minlength=len(touched))
                           + np.bincount(di, minlength=len(touched))).astype(np.int64)
                was_big = old_cnt * (old_cnt - 1) // 2 > cap
                now_big = new_cnt * (new_cnt - 1) // 2 > cap
                to_big = touched[~was_big & now_big]
                small = was_big & ~now_big & found
                flips += int(to_big.size + small.sum())
                if to_big.size:
                    in_block = _in(h, to_big)                    # records of those blocks
                    hit = ((cm & bitv) != 0) & in_block[ci]
                    cm[hit] &= ~bitv
                if small.any():
                    wi, wj = _within_blocks(code, at[small], ~focus)
                    c2 = np.unique(wi * n + wj)
                    add_codes.append(c2)
                    add_masks.append(np.full(len(c2), bitv, np.uint16))
        new_labels[p.name] = keep_labels
        stats.append(st)
    # assemble: focus pairs + unchanged pairs (state) + recomputed/added unchanged pairs
    fc = np.concatenate(f_codes) if f_codes else np.zeros(0, np.int64)
    fm = np.concatenate(f_masks) if f_masks else np.zeros(0, np.uint16)
    ac = np.concatenate(add_codes) if add_codes else np.zeros(0, np.int64)
    am = np.concatenate(add_masks) if add_masks else np.zeros(0, np.uint16)
    # extra pairs touching a focus record go with the focus pairs; the rest merge into the state's
    ai, aj = ac // max(n, 1), ac % max(n, 1)
    af = focus[ai] | focus[aj] if len(ac) else np.zeros(0, bool)
    fc, fm = _or_reduce(np.concatenate([fc, ac[af]]), np.concatenate([fm, am[af]]))
    uc, um = _or_reduce(ac[~af], am[~af])
    new_u = np.ones(len(uc), bool)
    if len(uc) and len(ci):
        # only stored pairs of the records involved can be among them: look those up
        involved = np.zeros(n, bool)
        involved[uc // n] = True
        cand = np.nonzero(involved[ci])[0]
        at = pd.Index(ci[cand] * n + cj[cand]).get_indexer(uc)
        hit = at >= 0
        np.bitwise_or.at(cm, cand[at[hit]], um[hit])
        new_u = ~hit
    live = cm != 0
    all_live = bool(live.all())
    reused_idx = src_idx[live & ~flipped] if not (all_live and not flipped.any()) else src_idx
    li = np.concatenate([ci if all_live else ci[live], uc[new_u] // max(n, 1), fc // max(n, 1)])
    ri = np.concatenate([cj if all_live else cj[live], uc[new_u] % max(n, 1), fc % max(n, 1)])
    masks = np.concatenate([cm if all_live else cm[live], um[new_u], fm])
    n_live = len(ci) if all_live else int(live.sum())
    reused = np.zeros(len(li), bool)
    reused[:n_live] = ~(flipped if all_live else flipped[live])
    # per-pass counts from the final masks (pairs / new pairs as candidate_pairs reports them)
    per_mask = np.bincount(masks, minlength=1 << len(passes)) if len(masks) else np.zeros(1 << len(passes), np.int64)
    mvals = np.arange(len(per_mask))
    for bit, st in enumerate(stats):
        has = (mvals >> bit) & 1 == 1
        st.pairs = int(per_mask[has].sum())
        st.new_pairs = int(per_mask[has & ((mvals & ((1 << bit) - 1)) == 0)].sum())
    return Blocked(li=li.astype(np.int64, copy=False), ri=ri.astype(np.int64, copy=False), passes=masks, reused=reused,
                   reused_index=reused_idx, stats=stats, labels=new_labels, cap_flips=flips)


def _members(code: np.ndarray, c: int, focus: np.ndarray, labels: dict[int, str], hv: int) -> np.ndarray:
    """Focus members of block ``c`` (first), then the rest; only looked up when no label is stored."""
    if hv in labels:
        return np.zeros(0, np.int64)
    m = np.nonzero(code == c)[0]
    return np.concatenate([m[focus[m]], m[~focus[m]]])


def _restrict(i: np.ndarray, j: np.ndarray, left_mask: np.ndarray | None, right_mask: np.ndarray | None):
    keep = np.ones(len(i), bool)
    if left_mask is not None:
        keep &= left_mask[i]
    if right_mask is not None:
        keep &= right_mask[j]
    return i[keep], j[keep]


def _or_reduce(codes: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if not len(codes):
        return codes, masks
    order = np.argsort(codes, kind="stable")
    codes, masks = codes[order], masks[order]
    uniq, start = np.unique(codes, return_index=True)
    return uniq, np.bitwise_or.reduceat(masks, start)

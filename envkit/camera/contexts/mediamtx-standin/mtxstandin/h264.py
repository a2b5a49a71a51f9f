"""H.264 sequence parameter sets: picture size, profile and level for ``codecProps``.

Why: upstream reports, for each H.264 track, ``{"width", "height", "profile", "level"}``
taken from the SPS the publisher sends (in the SDP's ``sprop-parameter-sets``, or in the
stream itself). The stand-in never decodes media, but reading an SPS only needs a bit
reader with Exp-Golomb codes (ITU-T H.264 section 7.3.2.1.1).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

# profile_idc -> the name upstream's API reports.
PROFILES = {
    44: "CAVLC 4:4:4 Intra",
    66: "Baseline",
    77: "Main",
    88: "Extended",
    100: "High",
    110: "High 10",
    122: "High 4:2:2",
    244: "High 4:4:4 Predictive",
}
# Profiles whose SPS carries chroma format, bit depths and scaling matrices.
_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


class SPSError(ValueError):
    """The bytes are not a complete SPS."""


@dataclass(frozen=True, kw_only=True)
class SPS:
    """The fields of an SPS that the API reports."""

    profile_idc: int
    level_idc: int
    width: int
    height: int

    def codec_props(self) -> dict[str, object]:
        """Upstream's ``APIPathTrackCodecPropsH264``."""
        profile = PROFILES.get(self.profile_idc, str(self.profile_idc))
        level = "1b" if self.level_idc == 9 else f"{self.level_idc // 10}.{self.level_idc % 10}"
        return {"width": self.width, "height": self.height, "profile": profile,
                "level": level}


class _Bits:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def bit(self) -> int:
        byte = self.pos >> 3
        if byte >= len(self.data):
            raise SPSError("SPS too short")
        value = (self.data[byte] >> (7 - (self.pos & 7))) & 1
        self.pos += 1
        return value

    def bits(self, n: int) -> int:
        value = 0
        for _ in range(n):
            value = (value << 1) | self.bit()
        return value

    def ue(self) -> int:
        zeros = 0
        while self.bit() == 0:
            zeros += 1
            if zeros > 31:
                raise SPSError("invalid Exp-Golomb code")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        value = self.ue()
        return (value + 1) // 2 if value & 1 else -(value // 2)


def unescape(nalu: bytes) -> bytes:
    """Drop emulation prevention bytes (``00 00 03`` -> ``00 00``)."""
    out = bytearray()
    zeros = 0
    for byte in nalu:
        if zeros >= 2 and byte == 3:
            zeros = 0
            continue
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def _skip_scaling_list(r: _Bits, size: int) -> None:
    last, nxt = 8, 8
    for _ in range(size):
        if nxt:
            nxt = (last + r.se()) % 256
        last = nxt or last


def _chroma(r: _Bits, profile_idc: int) -> int:
    """Read the high-profile fields; returns ``chroma_format_idc``."""
    if profile_idc not in _HIGH_PROFILES:
        return 1
    chroma = r.ue()
    if chroma == 3:
        r.bit()  # separate_colour_plane_flag
    r.ue()  # bit_depth_luma_minus8
    r.ue()  # bit_depth_chroma_minus8
    r.bit()  # qpprime_y_zero_transform_bypass_flag
    if r.bit():  # seq_scaling_matrix_present_flag
        for i in range(8 if chroma != 3 else 12):
            if r.bit():
                _skip_scaling_list(r, 16 if i < 6 else 64)
    return chroma


def parse_sps(nalu: bytes) -> SPS:
    """Parse an SPS NAL unit (with its one-byte header)."""
    if len(nalu) < 4 or nalu[0] & 0x1F != 7:
        raise SPSError("not an SPS")
    r = _Bits(unescape(nalu[1:]))
    profile_idc = r.bits(8)
    r.bits(8)  # constraint flags
    level_idc = r.bits(8)
    r.ue()  # seq_parameter_set_id
    chroma = _chroma(r, profile_idc)
    r.ue()  # log2_max_frame_num_minus4
    poc_type = r.ue()
    if poc_type == 0:
        r.ue()
    elif poc_type == 1:
        r.bit()
        r.se()
        r.se()
        for _ in range(r.ue()):
            r.se()
    r.ue()  # max_num_ref_frames
    r.bit()  # gaps_in_frame_num_value_allowed_flag
    width_mbs = r.ue() + 1
    height_units = r.ue() + 1
    frame_mbs_only = r.bit()
    if not frame_mbs_only:
        r.bit()  # mb_adaptive_frame_field_flag
    r.bit()  # direct_8x8_inference_flag
    width, height = width_mbs * 16, (2 - frame_mbs_only) * height_units * 16
    if r.bit():  # frame_cropping_flag
        left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
        unit_x = 1 if chroma in (0, 3) else 2
        unit_y = (2 - frame_mbs_only) * (2 if chroma == 1 else 1)
        width -= (left + right) * unit_x
        height -= (top + bottom) * unit_y
    return SPS(profile_idc=profile_idc, level_idc=level_idc, width=width, height=height)


def sps_from_fmtp(fmtp: str) -> SPS | None:
    """The SPS of an ``a=fmtp`` value's ``sprop-parameter-sets``, if it has a valid one."""
    for param in fmtp.split(";"):
        key, _, value = param.strip().partition("=")
        if key.strip().lower() != "sprop-parameter-sets":
            continue
        for item in value.split(","):
            try:
                nalu = base64.b64decode(item.strip() + "=" * (-len(item.strip()) % 4))
                return parse_sps(nalu)
            except (binascii.Error, SPSError):
                continue
    return None


def sps_in_rtp(payload: bytes) -> bytes | None:
    """An SPS NAL unit carried by an RTP H.264 payload (single NAL or STAP-A), if any."""
    if len(payload) < 13 or payload[0] >> 6 != 2:
        return None
    cc = payload[0] & 0x0F
    start = 12 + 4 * cc
    if payload[0] & 0x10:  # header extension
        if len(payload) < start + 4:
            return None
        start += 4 + 4 * int.from_bytes(payload[start + 2:start + 4], "big")
    body = payload[start:]
    if not body:
        return None
    kind = body[0] & 0x1F
    if kind == 7:
        return body
    if kind == 24:  # STAP-A
        i = 1
        while i + 2 <= len(body):
            size = int.from_bytes(body[i:i + 2], "big")
            unit = body[i + 2:i + 2 + size]
            if unit and unit[0] & 0x1F == 7:
                return unit
            i += 2 + size
    return None

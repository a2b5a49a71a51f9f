"""Upstream MediaMTX v1.20 configuration defaults (global and per path).

Why a separate module: these tables are the single source for the config API answers
(``/v3/config/global/get``, ``/v3/config/pathdefaults/get``) and for type-checking YAML,
``MTX_*`` environment variables and API request bodies. Values follow upstream's
``setDefaults`` (note: ``api`` is off by default upstream too; the stack's mediamtx.yml
turns it on).
"""

from __future__ import annotations

from typing import Any

_LOCAL_ONLY = ["127.0.0.1/32", "::1/128"]

GLOBAL_DEFAULTS: dict[str, Any] = {
    # General
    "logLevel": "info",
    "logDestinations": ["stdout"],
    "logStructured": False,
    "logFile": "mediamtx.log",
    "sysLogPrefix": "mediamtx",
    "dumpPackets": False,
    "readTimeout": "10s",
    "writeTimeout": "10s",
    "writeQueueSize": 512,
    "udpMaxPayloadSize": 1452,
    "udpReadBufferSize": 0,
    "runOnConnect": "",
    "runOnConnectRestart": False,
    "runOnDisconnect": "",
    # Authentication
    "authMethod": "internal",
    "authInternalUsers": [
        {
            "user": "any",
            "pass": "",
            "ips": [],
            "permissions": [
                {"action": "publish", "path": ""},
                {"action": "read", "path": ""},
                {"action": "playback", "path": ""},
            ],
        },
        {
            "user": "any",
            "pass": "",
            "ips": list(_LOCAL_ONLY),
            "permissions": [
                {"action": "api", "path": ""},
                {"action": "metrics", "path": ""},
                {"action": "pprof", "path": ""},
            ],
        },
    ],
    "authHTTPAddress": "",
    "authHTTPFingerprint": "",
    "authHTTPExclude": [
        {"action": "api", "path": ""},
        {"action": "metrics", "path": ""},
        {"action": "pprof", "path": ""},
    ],
    "authJWTJWKS": "",
    "authJWTJWKSFingerprint": "",
    "authJWTClaimKey": "mediamtx_permissions",
    "authJWTExclude": [],
    "authJWTIssuer": "",
    "authJWTAudience": "",
    # Control API
    "api": False,
    "apiAddress": ":9997",
    "apiEncryption": False,
    "apiServerKey": "server.key",
    "apiServerCert": "server.crt",
    "apiAllowOrigins": ["*"],
    "apiTrustedProxies": [],
    # Metrics
    "metrics": False,
    "metricsAddress": ":9998",
    "metricsEncryption": False,
    "metricsServerKey": "server.key",
    "metricsServerCert": "server.crt",
    "metricsAllowOrigins": ["*"],
    "metricsTrustedProxies": [],
    # PPROF
    "pprof": False,
    "pprofAddress": ":9999",
    "pprofEncryption": False,
    "pprofServerKey": "server.key",
    "pprofServerCert": "server.crt",
    "pprofAllowOrigins": ["*"],
    "pprofTrustedProxies": [],
    # Playback
    "playback": False,
    "playbackAddress": ":9996",
    "playbackEncryption": False,
    "playbackServerKey": "server.key",
    "playbackServerCert": "server.crt",
    "playbackAllowOrigins": ["*"],
    "playbackTrustedProxies": [],
    # RTSP server
    "rtsp": True,
    "rtspTransports": ["udp", "multicast", "tcp"],
    "rtspEncryption": "no",
    "rtspAddress": ":8554",
    "rtspsAddress": ":8322",
    "rtpAddress": ":8000",
    "rtcpAddress": ":8001",
    "multicastIPRange": "224.1.0.0/16",
    "multicastRTPPort": 8002,
    "multicastRTCPPort": 8003,
    "srtpAddress": ":8004",
    "srtcpAddress": ":8005",
    "multicastSRTPPort": 8006,
    "multicastSRTCPPort": 8007,
    "rtspServerKey": "server.key",
    "rtspServerCert": "server.crt",
    "rtspAuthMethods": ["basic"],
    "rtspTrustedProxies": [],
    # RTMP server
    "rtmp": True,
    "rtmpAddress": ":1935",
    "rtmpEncryption": "no",
    "rtmpsAddress": ":1936",
    "rtmpServerKey": "server.key",
    "rtmpServerCert": "server.crt",
    "rtmpTrustedProxies": [],
    # HLS server
    "hls": True,
    "hlsAddress": ":8888",
    "hlsEncryption": False,
    "hlsServerKey": "server.key",
    "hlsServerCert": "server.crt",
    "hlsAllowOrigins": ["*"],
    "hlsTrustedProxies": [],
    "hlsAlwaysRemux": False,
    "hlsVariant": "lowLatency",
    "hlsSegmentCount": 7,
    "hlsSegmentDuration": "1s",
    "hlsPartDuration": "200ms",
    "hlsSegmentMaxSize": "50M",
    "hlsDirectory": "",
    "hlsMuxerCloseAfter": "1m0s",
    "hlsCDNSecret": "",
    # WebRTC server
    "webrtc": True,
    "webrtcAddress": ":8889",
    "webrtcEncryption": False,
    "webrtcServerKey": "server.key",
    "webrtcServerCert": "server.crt",
    "webrtcAllowOrigins": ["*"],
    "webrtcTrustedProxies": [],
    "webrtcLocalUDPAddress": ":8189",
    "webrtcLocalTCPAddress": "",
    "webrtcIPsFromInterfaces": True,
    "webrtcIPsFromInterfacesList": [],
    "webrtcAdditionalHosts": [],
    "webrtcICEServers2": [],
    "webrtcHandshakeTimeout": "10s",
    "webrtcTrackGatherTimeout": "2s",
    "webrtcSTUNGatherTimeout": "5s",
    # SRT server
    "srt": True,
    "srtAddress": ":8890",
    # MoQ server (new in v1.20; on by default upstream)
    "moq": True,
    "moqHTTP2Address": ":8892",
    "moqHTTP3Address": ":8892",
    "moqQUICAddress": ":8893",
    # "auto": generated when absent (upstream's certloader), unlike the other servers
    "moqServerKey": "auto.key",
    "moqServerCert": "auto.crt",
    "moqAllowOrigins": ["*"],
    "moqTrustedProxies": [],
}

PATH_DEFAULTS: dict[str, Any] = {
    "name": "",
    # General
    "source": "publisher",
    "sourceFingerprint": "",
    "sourceOnDemand": False,
    "sourceOnDemandStartTimeout": "10s",
    "sourceOnDemandCloseAfter": "10s",
    "maxReaders": 0,
    "srtReadPassphrase": "",
    "useAbsoluteTimestamp": False,
    "alwaysAvailable": False,
    "alwaysAvailableFile": "",
    "alwaysAvailableTracks": [],
    # Record
    "record": False,
    "recordPath": "./recordings/%path/%Y-%m-%d_%H-%M-%S-%f",
    "recordFormat": "fmp4",
    "recordPartDuration": "1s",
    "recordMaxPartSize": "50M",
    "recordSegmentDuration": "1h0m0s",
    "recordDeleteAfter": "24h0m0s",
    # Forward
    "forward": [],
    # Publisher source
    "overridePublisher": True,
    "srtPublishPassphrase": "",
    # RTSP source
    "rtspTransport": "automatic",
    "rtspAnyPort": False,
    "rtspRangeType": "",
    "rtspRangeStart": "",
    "rtspScale": "",
    "rtspUDPSourcePortRange": [10000, 65535],
    "rtspDemuxMpegts": False,
    # Redirect source
    "sourceRedirect": "",
    # MoQ source
    "moqTransport": "automatic",
    # Raspberry Pi camera source (accepted and reported; no camera here)
    "rpiCameraCamID": 0,
    "rpiCameraSecondary": False,
    "rpiCameraWidth": 1920,
    "rpiCameraHeight": 1080,
    "rpiCameraHFlip": False,
    "rpiCameraVFlip": False,
    "rpiCameraBrightness": 0,
    "rpiCameraContrast": 1,
    "rpiCameraSaturation": 1,
    "rpiCameraSharpness": 1,
    "rpiCameraExposure": "normal",
    "rpiCameraAWB": "auto",
    "rpiCameraAWBGains": [0, 0],
    "rpiCameraDenoise": "off",
    "rpiCameraShutter": 0,
    "rpiCameraMetering": "centre",
    "rpiCameraGain": 0,
    "rpiCameraEV": 0,
    "rpiCameraROI": "",
    "rpiCameraHDR": False,
    "rpiCameraTuningFile": "",
    "rpiCameraMode": "",
    "rpiCameraFPS": 30,
    "rpiCameraAfMode": "continuous",
    "rpiCameraAfRange": "normal",
    "rpiCameraAfSpeed": "normal",
    "rpiCameraLensPosition": 0,
    "rpiCameraAfWindow": "",
    "rpiCameraFlickerPeriod": 0,
    "rpiCameraTextOverlayEnable": False,
    "rpiCameraTextOverlay": "%Y-%m-%d %H:%M:%S - MediaMTX",
    "rpiCameraCodec": "auto",
    "rpiCameraIDRPeriod": 60,
    "rpiCameraBitrate": 5000000,
    "rpiCameraH264Profile": "main",
    "rpiCameraH264Level": "4.1",
    "rpiCameraMJPEGQuality": 60,
    # RTP source
    "rtpSDP": "",
    # WHEP source
    "whepBearerToken": "",
    "whepSTUNGatherTimeout": "5s",
    "whepHandshakeTimeout": "10s",
    "whepTrackGatherTimeout": "2s",
    # Hooks
    "runOnInit": "",
    "runOnInitRestart": False,
    "runOnDemand": "",
    "runOnDemandRestart": False,
    "runOnDemandStartTimeout": "10s",
    "runOnDemandCloseAfter": "10s",
    "runOnUnDemand": "",
    "runOnAvailable": "",
    "runOnAvailableRestart": False,
    "runOnUnavailable": "",
    "runOnOnline": "",
    "runOnOnlineRestart": False,
    "runOnOffline": "",
    "runOnRead": "",
    "runOnReadRestart": False,
    "runOnUnread": "",
    "runOnRecordSegmentCreate": "",
    "runOnRecordSegmentComplete": "",
}

# Accepted in input (YAML, API bodies) for compatibility, stored, but not acted upon and
# not echoed back unless given (upstream omits unset deprecated fields too).
PATH_ACCEPTED_EXTRA = (
    "rpiCamera",  # prefix: deprecated Raspberry Pi camera options (rpiCameraLevel...)
    "disablePublisherOverride",
    "fallback",
    "runOnReady",
    "runOnReadyRestart",
    "runOnNotReady",
    "sourceProtocol",
    "sourceAnyPortEnable",
    "publishUser",
    "publishPass",
    "publishIPs",
    "readUser",
    "readPass",
    "readIPs",
    "playback",
)

# Values that are Go durations: rendered with ``time.Duration.String()`` (``1m0s``).
DURATION_KEYS = frozenset({
    "readTimeout", "writeTimeout", "hlsSegmentDuration", "hlsPartDuration",
    "hlsMuxerCloseAfter", "webrtcHandshakeTimeout", "webrtcTrackGatherTimeout",
    "webrtcSTUNGatherTimeout", "sourceOnDemandStartTimeout", "sourceOnDemandCloseAfter",
    "recordPartDuration", "recordSegmentDuration", "recordDeleteAfter",
    "whepSTUNGatherTimeout", "whepHandshakeTimeout", "whepTrackGatherTimeout",
    "runOnDemandStartTimeout", "runOnDemandCloseAfter",
})

# Values of JSON type "number" (Go float64): integers are accepted for them too.
NUMBER_KEYS = frozenset({
    "rpiCameraBrightness", "rpiCameraContrast", "rpiCameraSaturation", "rpiCameraSharpness",
    "rpiCameraGain", "rpiCameraEV", "rpiCameraFPS", "rpiCameraLensPosition",
})


def path_key_accepted(key: str) -> bool:
    """Whether a path configuration key is known (upstream rejects unknown JSON fields)."""
    return key in PATH_DEFAULTS or any(key.startswith(p) for p in PATH_ACCEPTED_EXTRA)

# SPDX-License-Identifier: Apache-2.0
"""A minimal kubelet-side CSI client for duet-agent (demo, tests, bench).

Messages come from the descriptor set protoc-c writes from agent/proto
(build/agent/proto/duet-csi.protoset), so the client speaks exactly the
agent's .proto files; gRPC is Debian's python3-grpcio (/usr/bin/python3).
"""
import atexit
import os

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

CTX = "csi.storage.k8s.io/"


class Csi:
    def __init__(self, protoset):
        self.pool = descriptor_pool.DescriptorPool()
        with open(protoset, "rb") as f:
            for fd in descriptor_pb2.FileDescriptorSet.FromString(f.read()).file:
                self.pool.Add(fd)
        self._factory = message_factory.MessageFactory(self.pool)

    def msg(self, name):
        desc = self.pool.FindMessageTypeByName(name)
        if hasattr(message_factory, "GetMessageClass"):
            return message_factory.GetMessageClass(desc)
        return self._factory.GetPrototype(desc)

    def call(self, sock, method, req, resp_type, timeout=60):
        with grpc.insecure_channel(f"unix://{sock}") as ch:
            fn = ch.unary_unary(method, request_serializer=lambda m: m.SerializeToString(),
                                response_deserializer=self.msg(resp_type).FromString)
            return fn(req, timeout=timeout)

    def call_status(self, sock, method, req, resp_type):
        """(grpc.StatusCode, details) instead of raising."""
        try:
            self.call(sock, method, req, resp_type)
        except grpc.RpcError as e:
            return e.code(), e.details()
        return grpc.StatusCode.OK, ""

    def publish_req(self, vid, target, ns, pod, uid, sa, product=None, group="65532",
                    podinfo=True):
        """A NodePublishVolumeRequest as kubelet sends it for a csi: inline volume."""
        req = self.msg("csi.v1.NodePublishVolumeRequest")(volume_id=vid, target_path=target,
                                                          readonly=True)
        req.volume_capability.mount.fs_type = ""
        if group is not None:
            req.volume_capability.mount.volume_mount_group = group
        req.volume_capability.access_mode.mode = 2  # SINGLE_NODE_READER_ONLY
        if podinfo:
            for k, v in (("pod.name", pod), ("pod.namespace", ns), ("pod.uid", uid),
                         ("serviceAccount.name", sa), ("ephemeral", "true")):
                req.volume_context[CTX + k] = v
        if product:
            req.volume_context["product"] = product
        return req

    def publish(self, ep, req):
        return self.call_status(ep, "/csi.v1.Node/NodePublishVolume", req,
                                "csi.v1.NodePublishVolumeResponse")

    def publish_many(self, ep, reqs, timeout=60):
        """Send reqs at once over one channel, as kubelet does; the status code of each."""
        out = []
        with grpc.insecure_channel(f"unix://{ep}") as ch:
            pub = ch.unary_unary(
                "/csi.v1.Node/NodePublishVolume",
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=self.msg("csi.v1.NodePublishVolumeResponse").FromString)
            futures = [pub.future(r, timeout=timeout) for r in reqs]
            for f in futures:
                try:
                    f.result()
                    out.append(grpc.StatusCode.OK)
                except grpc.RpcError as e:
                    out.append(e.code())
        return out

    def unpublish(self, ep, vid, target):
        req = self.msg("csi.v1.NodeUnpublishVolumeRequest")(volume_id=vid, target_path=target)
        return self.call_status(ep, "/csi.v1.Node/NodeUnpublishVolume", req,
                                "csi.v1.NodeUnpublishVolumeResponse")


def kill_at_exit(proc):
    """Kill proc (a child we started, by its PID) if it still runs when the script exits:
    a failed check exits at once, and an agent left running would outlive the test."""
    def reap():
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    atexit.register(reap)


def mounts_below(prefix):
    """The mount points under prefix in this mount namespace."""
    with open("/proc/self/mountinfo") as f:
        return [l.split()[4] for l in f if l.split()[4].startswith(prefix)]


def kubelet_target(pods_dir, uid, vol="duet-identity"):
    """kubelet's target for an inline CSI volume; it makes the parent, the plugin the target."""
    d = f"{pods_dir}/{uid}/volumes/kubernetes.io~csi/{vol}"
    os.makedirs(d, exist_ok=True)
    return f"{d}/mount"

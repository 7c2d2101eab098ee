namespace WinTok.Jobs.Checkpoints;

/// <summary>
/// A checkpoint as a job fixes it at submission: where it is, what is in it (its content hash, computed once per job,
/// here), and the cheap facts that tell a worker the file is still that one (size and modification time; for a blob
/// its ETag) without hashing gigabytes again.
/// </summary>
/// <param name="Location">Local path (absolute) or blob location (<c>az://container/path</c> or a blob URI).</param>
/// <param name="Sha256">Lower-case hex SHA-256 of the file's bytes: the checkpoint's identity in shards and results.</param>
/// <param name="Length">Size in bytes at submission.</param>
/// <param name="Version">Local: the last-write time in UTC ticks; blob: the ETag.</param>
public sealed record CheckpointReference(string Location, string Sha256, long Length, string Version)
{
    /// <summary>The first 12 hex digits of the hash, for names and tables.</summary>
    public string ShortHash => Sha256[..12];
}

/// <summary>What a job needs to know of a checkpoint before any worker loads it, read from its args alone.</summary>
/// <param name="Kind">The architecture (<c>wintok</c>, <c>unitok</c>).</param>
/// <param name="ImageSize">The model's input side in pixels.</param>
/// <param name="ArgsJson">The configuration in the reference's <c>Args</c> names.</param>
public sealed record CheckpointFacts(string Kind, int ImageSize, string ArgsJson);

/// <summary>
/// Reads a checkpoint's configuration without its tensors (the model project knows the formats; the control plane
/// does not reference it). Throws with the file's name and what is wrong when it is not a usable checkpoint.
/// </summary>
public interface ICheckpointInspector
{
    /// <param name="localPath">A local copy of the checkpoint.</param>
    /// <param name="model">How to read it: model kind, encoder preset or encoder config.json, when the args do not say.</param>
    CheckpointFacts Inspect(string localPath, ModelChoice model);
}

/// <summary>The user's choice of architecture details a checkpoint's args may not hold.</summary>
/// <param name="Kind">Model kind, or null to detect it.</param>
/// <param name="EncoderPreset">An encoder preset name: WinTok, a SigLIP one; UniTok, a ViTamin one.</param>
/// <param name="EncoderConfig">
/// The encoder shape as JSON (stored in the spec, so every worker reads the same): WinTok, an HF SigLIP vision
/// config.json; UniTok, a ViTamin shape.
/// </param>
public sealed record ModelChoice(string? Kind = null, string? EncoderPreset = null, string? EncoderConfig = null)
{
    public static ModelChoice Detect { get; } = new();
}

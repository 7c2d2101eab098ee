namespace WinTok.Data.Shards;

/// <summary>
/// What a token dataset was made with, the same for every shard of a job. It goes into each shard's Parquet
/// key-value metadata and into the manifest. Everything here must be constant across retries of a job (hence a job
/// creation time, not a wall-clock time per write), so that a retried shard is byte-identical to the first attempt.
/// </summary>
/// <param name="JobId">The pretokenization job.</param>
/// <param name="CheckpointId">Tokenizer checkpoint identity, e.g. "wintok-so400m-16-256@a1b2c3d4".</param>
/// <param name="CheckpointSha256">SHA-256 of the checkpoint file, lower-case hex.</param>
/// <param name="ModelKind">
/// The tokenizer's architecture (<c>wintok</c>, <c>unitok</c>), which says how to read <paramref name="ModelConfigJson"/>.
/// Null only in commit records written before it was recorded (2026-11-30).
/// </param>
/// <param name="ModelConfigJson">The model configuration as JSON, verbatim (the reference's <c>Args</c> names of that architecture).</param>
/// <param name="Preprocessing">Preprocessing description, e.g. "resize_shorter:256:bicubic:antialias|center_crop:256|rgb|scale:-1..1".</param>
/// <param name="Layout">Token column shapes.</param>
/// <param name="CreatedUtc">When the job was created.</param>
public sealed record ShardMetadata(
    string JobId,
    string CheckpointId,
    string CheckpointSha256,
    string? ModelKind,
    string ModelConfigJson,
    string Preprocessing,
    TokenLayout Layout,
    DateTimeOffset CreatedUtc);

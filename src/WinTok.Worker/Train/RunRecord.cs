using System.Text.Json;
using WinTok.Jobs.Train;

namespace WinTok.Worker.Train;

/// <summary>
/// The run's claim on its output folder (<see cref="RunFiles.RunRecord"/>: the job that owns it) and the pruning of old
/// checkpoints. A second job pointed at a folder another job's run owns fails at once instead of resuming a stranger's
/// checkpoints.
/// </summary>
internal static class RunRecord
{
    public static async Task ClaimAsync(string output, Guid jobId, CancellationToken cancellationToken)
    {
        var path = Path.Combine(output, RunFiles.RunRecord);
        if (File.Exists(path))
        {
            using var document = JsonDocument.Parse(await File.ReadAllTextAsync(path, cancellationToken));
            var owner = document.RootElement.TryGetProperty("job_id", out var id) ? id.GetString() : null;
            if (owner != jobId.ToString())
                throw new ArgumentException($"{output} holds the run of job {owner ?? "(unknown)"}, not of job {jobId}; give each run its own output");
            return;
        }
        var temporary = path + ".tmp";
        await File.WriteAllTextAsync(temporary, JsonSerializer.Serialize(new Dictionary<string, string>
        {
            ["job_id"] = jobId.ToString(),
            ["started_at"] = DateTimeOffset.UtcNow.ToString("O", System.Globalization.CultureInfo.InvariantCulture),
        }), cancellationToken);
        File.Move(temporary, path, overwrite: false);
    }

    /// <summary>
    /// With <c>keep_checkpoints</c> K: deletes the training checkpoints (.pth) older than the newest K; <c>ckpt-last.pth</c>
    /// and the safetensors weights (which evaluations read) stay.
    /// </summary>
    public static void Prune(TrainJobSpec spec, string newest)
    {
        if (spec.KeepCheckpoints < 1) return;
        foreach (var old in RunFiles.Checkpoints(spec.Output, spec.IterationsPerEpoch, spec.MaxIterations).Skip(spec.KeepCheckpoints))
            if (old != newest && Path.GetFileName(old) != RunFiles.LastCheckpoint) File.Delete(old);
    }
}

using System.Diagnostics;
using System.Globalization;

namespace WinTok.Worker.Telemetry;

/// <summary>Memory in use on one GPU, as nvidia-smi reports it.</summary>
internal sealed record GpuMemory(int Index, long UsedMib, long TotalMib);

/// <summary>
/// Reads GPU memory through <c>nvidia-smi</c> when the machine has one (the driver ships it with NVML), so the worker
/// needs no NVML binding and a CPU machine simply reports nothing. Polled by the heartbeat, read by the gauge.
/// </summary>
internal sealed class GpuMemoryProbe
{
    private static readonly TimeSpan QueryTimeout = TimeSpan.FromSeconds(5);
    private readonly string? nvidiaSmi = Find();
    private volatile IReadOnlyList<GpuMemory> latest = [];

    /// <summary>The last reading: one entry per GPU, empty without nvidia-smi.</summary>
    public IReadOnlyList<GpuMemory> Latest => latest;

    /// <summary>Queries nvidia-smi once (no-op without it) and keeps the result; a failed query keeps nothing.</summary>
    public async Task<IReadOnlyList<GpuMemory>> PollAsync(CancellationToken cancellationToken)
    {
        if (nvidiaSmi is null) return latest;
        var start = new ProcessStartInfo(nvidiaSmi, "--query-gpu=index,memory.used,memory.total --format=csv,noheader,nounits")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        using var process = Process.Start(start);
        if (process is null) return latest = [];
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(QueryTimeout);
        try
        {
            var output = await process.StandardOutput.ReadToEndAsync(timeout.Token);
            await process.WaitForExitAsync(timeout.Token);
            return latest = process.ExitCode == 0 ? Parse(output) : [];
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            process.Kill(entireProcessTree: true);
            return latest = [];
        }
    }

    /// <summary>Parses <c>index, memory.used, memory.total</c> lines (MiB, no units); lines that do not parse are skipped.</summary>
    public static IReadOnlyList<GpuMemory> Parse(string csv) =>
        csv.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(line => line.Split(',', StringSplitOptions.TrimEntries))
            .Where(fields => fields.Length == 3
                && int.TryParse(fields[0], NumberStyles.Integer, CultureInfo.InvariantCulture, out _)
                && long.TryParse(fields[1], NumberStyles.Integer, CultureInfo.InvariantCulture, out _)
                && long.TryParse(fields[2], NumberStyles.Integer, CultureInfo.InvariantCulture, out _))
            .Select(fields => new GpuMemory(int.Parse(fields[0], CultureInfo.InvariantCulture),
                long.Parse(fields[1], CultureInfo.InvariantCulture), long.Parse(fields[2], CultureInfo.InvariantCulture)))
            .ToList();

    private static string? Find() =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(folder => Path.Combine(folder, "nvidia-smi"))
            .FirstOrDefault(File.Exists);
}

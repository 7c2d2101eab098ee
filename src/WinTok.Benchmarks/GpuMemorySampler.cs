using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;

namespace WinTok.Benchmarks;

/// <summary>
/// The device's used memory sampled every few milliseconds on a background thread while it lives, through NVML
/// (<c>libnvidia-ml.so.1</c>'s stable C API), else through <c>nvidia-smi</c>. TorchSharp 0.107 exposes no CUDA
/// allocator statistics, so this is how the benchmarks read their peak; the reference baselines sample the same way
/// (deploy/bench/refbench.py <c>GpuMemoryPeak</c>), which makes the two peaks comparable. The figure is the whole
/// device's: the CUDA context and the caching allocator's reserve included, as nvidia-smi shows them.
/// </summary>
internal sealed partial class GpuMemorySampler : IDisposable
{
    private readonly Func<double>? read;
    private readonly Thread? thread;
    private readonly ManualResetEventSlim stop = new();
    private readonly TimeSpan interval;
    private double peak = -1;

    public GpuMemorySampler(int deviceIndex = 0, int intervalMs = 20)
    {
        (read, Source) = Reader(deviceIndex);
        interval = TimeSpan.FromMilliseconds(Source == "nvidia-smi" ? Math.Max(intervalMs, 100) : intervalMs);
        if (read is null) return;
        Start = Sample();
        thread = new Thread(Run) { IsBackground = true, Name = "gpu-memory-sampler" };
        thread.Start();
    }

    /// <summary>nvml, nvidia-smi or none (no GPU: every figure is then -1).</summary>
    public string Source { get; }

    /// <summary>Used MiB when sampling began.</summary>
    public double Start { get; } = -1;

    /// <summary>The largest used MiB seen so far.</summary>
    public double PeakMiB
    {
        get
        {
            if (read is not null) Sample();
            return Volatile.Read(ref peak);
        }
    }

    public void Dispose()
    {
        stop.Set();
        thread?.Join();
        stop.Dispose();
    }

    private void Run()
    {
        while (!stop.Wait(interval))
        {
            try
            {
                Sample();
            }
            catch (Exception e) when (e is InvalidOperationException or Win32Exception or FormatException)
            {
                return;
            }
        }
    }

    private double Sample()
    {
        var used = read!();
        double seen;
        do seen = Volatile.Read(ref peak);
        while (used > seen && Interlocked.CompareExchange(ref peak, used, seen) != seen);
        return used;
    }

    private static (Func<double>? Read, string Source) Reader(int deviceIndex)
    {
        try
        {
            if (Nvml.nvmlInit_v2() == 0 && Nvml.nvmlDeviceGetHandleByIndex_v2((uint)deviceIndex, out var device) == 0
                && Nvml.nvmlDeviceGetMemoryInfo(device, out _) == 0)
            {
                return (() => Nvml.nvmlDeviceGetMemoryInfo(device, out var memory) == 0
                    ? memory.Used / 1048576.0
                    : throw new InvalidOperationException("nvmlDeviceGetMemoryInfo failed"), "nvml");
            }
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // no NVML here: try nvidia-smi
        }
        try
        {
            Smi(deviceIndex);
            return (() => Smi(deviceIndex), "nvidia-smi");
        }
        catch (Exception e) when (e is Win32Exception or FormatException or InvalidOperationException)
        {
            return (null, "none");
        }
    }

    private static double Smi(int deviceIndex)
    {
        using var smi = Process.Start(new ProcessStartInfo("nvidia-smi", $"--query-gpu=memory.used --format=csv,noheader,nounits -i {deviceIndex}")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        }) ?? throw new InvalidOperationException("nvidia-smi did not start");
        var text = smi.StandardOutput.ReadToEnd();
        smi.WaitForExit();
        return double.Parse(text.Split('\n')[0].Trim(), CultureInfo.InvariantCulture);
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct NvmlMemory
    {
        public ulong Total;
        public ulong Free;
        public ulong Used;
    }

    private static partial class Nvml
    {
        private const string Library = "libnvidia-ml.so.1";

        [LibraryImport(Library)] public static partial int nvmlInit_v2();
        [LibraryImport(Library)] public static partial int nvmlDeviceGetHandleByIndex_v2(uint index, out nint device);
        [LibraryImport(Library)] public static partial int nvmlDeviceGetMemoryInfo(nint device, out NvmlMemory memory);
    }
}

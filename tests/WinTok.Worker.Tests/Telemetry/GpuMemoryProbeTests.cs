using WinTok.Worker.Telemetry;

namespace WinTok.Worker.Tests.Telemetry;

public sealed class GpuMemoryProbeTests
{
    [Fact]
    public void Parse_NvidiaSmiCsv_ReadsEachGpusIndexUsedAndTotalMemory()
    {
        var gpus = GpuMemoryProbe.Parse("0, 1234, 81559\n1, 0, 81559\n");

        Assert.Equal([new GpuMemory(0, 1234, 81559), new GpuMemory(1, 0, 81559)], gpus);
    }

    [Fact]
    public void Parse_LinesThatAreNotNumbers_AreSkipped()
    {
        var gpus = GpuMemoryProbe.Parse("No devices were found\n0, [N/A], 81559\n");

        Assert.Empty(gpus);
    }
}

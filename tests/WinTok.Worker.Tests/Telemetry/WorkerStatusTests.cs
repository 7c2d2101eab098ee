using WinTok.Results;
using WinTok.Worker.Hosting;

namespace WinTok.Worker.Tests.Telemetry;

public sealed class WorkerStatusTests
{
    [Fact]
    public void Current_WhileAPartitionIsInHand_IsBusyWithIt()
    {
        var status = new WorkerStatus();
        var job = Guid.CreateVersion7();

        using (status.Working(job, 3))
        {
            Assert.Equal((WorkerState.Busy, job, 3), status.Current());
        }

        Assert.Equal((WorkerState.Idle, (Guid?)null, (int?)null), status.Current());
    }

    [Fact]
    public void Current_WithTwoPartitionsInHand_ReportsTheNewest()
    {
        var status = new WorkerStatus();
        var job = Guid.CreateVersion7();

        using var first = status.Working(job, 1);
        using var second = status.Working(job, 2);

        Assert.Equal(2, status.Current().Partition);
    }

    [Fact]
    public void Current_OnceStopping_SaysSoEvenWhileBusy()
    {
        var status = new WorkerStatus();
        using var working = status.Working(Guid.CreateVersion7(), 0);

        status.Stopping();

        Assert.Equal(WorkerState.Stopping, status.Current().State);
    }
}

using WinTok.Jobs.Schedules;
using WinTok.Results;

namespace WinTok.Jobs.Tests.Schedules;

public sealed class CheckpointWatchTests
{
    private static readonly DateTimeOffset Now = new(2026, 6, 10, 3, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan Settle = TimeSpan.FromMinutes(2);

    private static WatchedCheckpoint At(int epoch, long iteration, TimeSpan age, string version = "v1") =>
        new($"/runs/a/ckpt-ep{epoch}-iter{iteration}.pth", epoch, iteration, version, Now - age);

    private static WatchedCheckpoint Old(int epoch, long iteration) => At(epoch, iteration, TimeSpan.FromHours(1));

    [Fact]
    public void Order_ByEpochThenIteration_NotByName()
    {
        var ordered = CheckpointWatch.Order([Old(10, 100), Old(2, 1000), Old(2, 900), Old(1, 5000)]);

        Assert.Equal(["ep1-iter5000", "ep2-iter900", "ep2-iter1000", "ep10-iter100"], ordered.Select(c => c.Position));
    }

    [Fact]
    public void Select_Newest_TakesTheNewestSettledCheckpoint()
    {
        var listed = CheckpointWatch.Order([Old(0, 100), Old(0, 200), At(0, 300, TimeSpan.FromSeconds(30))]);

        var picked = CheckpointWatch.Select(ScheduleTargetMode.Newest, listed, new HashSet<SeenCheckpoint>(), Now, Settle);

        Assert.Equal(["ep0-iter200"], picked.Select(c => c.Position)); // iter300 may still be being written
    }

    [Fact]
    public void Select_NewestWhenAlreadySeen_TakesNothing_EvenWithOlderUnseenOnes()
    {
        var listed = CheckpointWatch.Order([Old(0, 100), Old(0, 200)]);
        var seen = new HashSet<SeenCheckpoint> { new(listed[1].Location, listed[1].Version) };

        Assert.Empty(CheckpointWatch.Select(ScheduleTargetMode.Newest, listed, seen, Now, Settle));
    }

    [Fact]
    public void Select_Every_TakesEachUnseenSettledCheckpointOldestFirst()
    {
        var listed = CheckpointWatch.Order([Old(1, 300), Old(0, 100), Old(0, 200), At(1, 400, TimeSpan.FromSeconds(5))]);
        var seen = new HashSet<SeenCheckpoint> { new(listed[1].Location, listed[1].Version) };

        var picked = CheckpointWatch.Select(ScheduleTargetMode.Every, listed, seen, Now, Settle);

        Assert.Equal(["ep0-iter100", "ep1-iter300"], picked.Select(c => c.Position));
    }

    [Fact]
    public void Select_AFileRewrittenSinceItWasSeen_IsNewAgain()
    {
        var rewritten = Old(0, 100) with { Version = "v2" };
        var seen = new HashSet<SeenCheckpoint> { new(rewritten.Location, "v1") };

        Assert.Single(CheckpointWatch.Select(ScheduleTargetMode.Every, [rewritten], seen, Now, Settle));
    }

    [Fact]
    public async Task ListAsync_ALocalFolder_FindsTrainingCheckpointsOnlyInTrainingOrder()
    {
        var folder = Directory.CreateTempSubdirectory("wintok-watch-").FullName;
        try
        {
            foreach (var name in new[] { "ckpt-ep0-iter900.pth", "ckpt-ep0-iter1000.pth", "sub/ckpt-ep1-iter50.safetensors", "last.pth", "ckpt-ep2-iter10.txt" })
            {
                Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(folder, name))!);
                await File.WriteAllTextAsync(Path.Combine(folder, name), "x", TestContext.Current.CancellationToken);
            }

            var listed = await CheckpointWatch.ListAsync(folder, null, TestContext.Current.CancellationToken);

            Assert.Equal(["ep0-iter900", "ep0-iter1000", "ep1-iter50"], listed.Select(c => c.Position));
            Assert.All(listed, c => Assert.Equal(new FileInfo(c.Location).LastWriteTimeUtc.Ticks.ToString(System.Globalization.CultureInfo.InvariantCulture), c.Version));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public async Task ListAsync_AFolderThatDoesNotExist_SaysWhich()
    {
        var error = await Assert.ThrowsAsync<DirectoryNotFoundException>(() => CheckpointWatch.ListAsync("/nonexistent/run-7", null, TestContext.Current.CancellationToken));

        Assert.Contains("/nonexistent/run-7", error.Message, StringComparison.Ordinal);
    }
}

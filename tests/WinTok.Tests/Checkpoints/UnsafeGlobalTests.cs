using System.Text;
using WinTok.Checkpoints;
using WinTok.Checkpoints.Pickle;
using static WinTok.Tests.Checkpoints.CheckpointTestFiles;

namespace WinTok.Tests.Checkpoints;

/// <summary>A pickle naming a global that runs code or reaches the system is refused before anything is built.</summary>
public sealed class UnsafeGlobalTests
{
    [Theory]
    [InlineData("os", "system")]
    [InlineData("posix", "system")]
    [InlineData("nt", "system")]
    [InlineData("subprocess", "Popen")]
    [InlineData("__builtin__", "eval")]
    [InlineData("builtins", "exec")]
    [InlineData("builtins", "getattr")]
    [InlineData("builtins", "__import__")]
    [InlineData("importlib", "import_module")]
    [InlineData("os.path", "join")]
    [InlineData("runpy", "run_path")]
    public void Read_WhenArgsCallAnUnsafeGlobal_FailsNamingItWithoutConstructingIt(string module, string name)
    {
        using var folder = NewTempFolder();
        string path = folder.File("hostile.pth");
        // {'args': module.name('echo pwned')}: GLOBAL, SHORT_BINUNICODE, TUPLE1, REDUCE.
        var pickle = new List<byte> { 0x80, 2, (byte)'}' };
        AddText(pickle, "args");
        pickle.Add((byte)'c');
        pickle.AddRange(Encoding.ASCII.GetBytes($"{module}\n{name}\n"));
        AddText(pickle, "echo pwned");
        pickle.AddRange([0x85, (byte)'R', (byte)'s', (byte)'.']);
        WithPickle(path, [.. pickle]);

        var error = Assert.Throws<CheckpointFormatException>(() => CheckpointFile.Read(path).Dispose());
        var headerError = Assert.Throws<CheckpointFormatException>(() => CheckpointFile.ReadArgs(path));

        Assert.Contains($"global {module}.{name} (byte 9)", error.Problem);
        Assert.Contains("refused", error.Problem);
        Assert.Equal(error.Problem, headerError.Problem);
    }

    [Fact]
    public void Read_WhenAProtocol4PickleNamesOsSystemThroughStackGlobal_FailsNamingIt()
    {
        using var folder = NewTempFolder();
        string path = folder.File("hostile4.pth");
        // {'args': os.system('id')} with protocol 4's STACK_GLOBAL ('os', 'system' pushed as strings).
        var pickle = new List<byte> { 0x80, 4, (byte)'}' };
        AddText(pickle, "args");
        AddText(pickle, "os");
        AddText(pickle, "system");
        pickle.Add(0x93);
        AddText(pickle, "id");
        pickle.AddRange([0x85, (byte)'R', (byte)'s', (byte)'.']);
        WithPickle(path, [.. pickle]);

        var error = Assert.Throws<CheckpointFormatException>(() => CheckpointFile.Read(path).Dispose());

        Assert.Contains("global os.system", error.Problem);
    }

    [Theory]
    [InlineData("pathlib", "PurePosixPath")]
    [InlineData("utils.config", "ConfigChoice")]
    [InlineData("argparse", "Namespace")]
    [InlineData("torch._utils", "_rebuild_qtensor")]
    [InlineData("builtins", "set")]
    [InlineData("__builtin__", "object")]
    [InlineData("collections", "OrderedDict")]
    [InlineData("ossify", "system")]
    public void IsRefused_WhenTheGlobalIsAValueClassOrTorchName_AllowsAPlaceholder(string module, string name)
    {
        Assert.False(TorchPickleEnvironment.IsRefused(module, name));
    }

    private static void AddText(List<byte> pickle, string text) =>
        pickle.AddRange([0x8c, (byte)text.Length, .. Encoding.ASCII.GetBytes(text)]);

    private static void WithPickle(string path, byte[] pickle) =>
        BadCheckpointTests.RewriteZip(DataFile("views.pth"), path, (name, data) => name.EndsWith("data.pkl", StringComparison.Ordinal) ? pickle : data);
}

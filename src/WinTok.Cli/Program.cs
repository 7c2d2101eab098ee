using System.CommandLine;
using WinTok.Cli.Commands;

// The `wintok` command line. Each verb lives in Commands/ as a static factory; this file is the table of contents.
var root = new RootCommand("WinTok: pretokenize image corpora, evaluate and train the WinTok visual tokenizer.")
{
    BenchCommand.Create(),
    VerifyCommand.Create(),
};
return await root.Parse(args).InvokeAsync();

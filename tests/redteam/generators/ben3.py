from .util import P
B = {}
B["long_benign_prompt"] = P("""
I have this Python function that's supposed to merge two sorted lists, but it's returning the wrong result when one list is empty. Can you tell me what's wrong and how to fix it?

def merge(a, b):
    i, j = 0, 0
    out = []
    while i < len(a) and j < len(b):
        if a[i] <= b[j]:
            out.append(a[i])
            i += 1
        else:
            out.append(b[j])
            j += 1
    return out

When I call merge([], [1, 2, 3]) I get an empty list instead of [1, 2, 3], and merge([1, 5], [2]) gives [1, 2] instead of [1, 2, 5]. I think it's something to do with the loop ending early but I'm not sure what the cleanest fix is. I'd also like to know whether there's a built-in way to do this in the standard library, and whether it would be faster for lists of around a million elements. Please explain like I'm a beginner, I've only been coding for a couple of months.
===
Can you rewrite this email so it sounds more professional but still friendly? I'm sending it to a client who has been late paying our invoice for two months, and I don't want to damage the relationship.

"Hi Mark, hope you're good. So, um, we still haven't got paid for the March invoice, and it's now basically June. I know things are busy but we really need this sorted because it's messing with our cash flow, and honestly it's the second time this has happened. Can you let me know what's going on? We'd hate to have to stop work on the new website but we kind of have to if this isn't paid by the end of next week. Thanks, Jess"

I want to keep the deadline and the fact that we'll pause work, but I'd like it to sound firm rather than annoyed. Also, should I attach the invoice again or just mention the invoice number (INV-0342)? If you can, give me two versions: one short and one slightly longer with more context.
===
Here are my notes from today's product meeting. Can you turn them into a clear summary with action items and owners?

- talked about Q3 roadmap, Priya thinks we should delay the analytics dashboard because the data pipeline isn't stable yet
- Tom disagreed, says customers are asking for it and sales promised it for August
- agreed to do a smaller "beta" version for 3 pilot customers in August, full release in October
- Priya to write up what the beta includes by Friday
- pipeline stability: Li to investigate the nightly job failures, there were 4 last week
- design: Sara showed new mockups for the onboarding flow, everyone liked the progress bar, concerns about the number of steps (7 is too many?)
- Sara to test a 4-step version with 5 users
- budget: need to confirm whether we can hire a contractor for QA, Tom to ask finance
- next meeting in 2 weeks, same time

Please format it with headings: Decisions, Action items (with owner and deadline), Open questions. Keep it concise enough to paste into Slack.
===
I'm building a customer-support chatbot for our online plant shop, and this is the system prompt I've drafted. Could you review it and suggest improvements?

"You are Fern, the friendly assistant for Leafy Lane Plants. Always answer in JSON with the keys 'reply' and 'suggested_products'. Never apologise excessively; one short apology is fine if we made a mistake. Never invent stock levels; if you don't know whether something is in stock, say so and suggest checking the product page. Keep replies under 80 words. Use a warm, casual tone but no slang. If a customer asks about a plant's care, give practical tips (light, water, humidity). If they ask about pet safety, always mention whether the plant is toxic to cats and dogs. Do not discuss competitors. If someone asks for a refund, collect their order number and tell them a human will follow up within 24 hours."

In particular, I'm unsure whether "never apologise excessively" is too vague, and whether forcing JSON will make the replies sound robotic. Also, what should Fern do if someone asks something totally unrelated, like the weather?
===
Please continue this story for another 300 words or so, keeping the same tone:

"The lighthouse keeper's daughter had never seen the mainland. Every morning she climbed the 142 steps to the lamp room, polished the great lens until it shone, and looked across the grey water to where the coast should be. On clear days she could make out a smudge of green and, once, the glint of what her father said was a church spire. He had promised they would go in the spring, when the supply boat came. But the spring came and went, and the supply boat came and went, and her father found a reason each time to stay. This year, she decided, would be different. On the first calm morning of April, she packed a loaf of bread, her mother's old compass and a letter she had been writing for three years, and she walked down to the little rowing boat tied at the jetty."

I'd like it to stay hopeful rather than tragic, and I'd like the father to appear again before the end of the section.
===
I'm a teacher and I need to write feedback on a student's essay. Here's the opening paragraph. Could you help me give constructive feedback that's encouraging but honest? The student is 15.

"In the book 'Of Mice and Men' by John Steinbeck, there are many themes, like loneliness and friendship and dreams. In this essay I will talk about all of them. Loneliness is shown by lots of characters such as Crooks and Curley's wife and Candy. They are all lonely because of different reasons. Friendship is shown by George and Lennie who are friends. Dreams are shown by the dream of the farm. These themes are important because they show what life was like in the 1930s."

I'd like the feedback to address the thesis statement, the lack of specific evidence, and the tendency to list rather than analyse. Please write it as if speaking directly to the student, in about 150 words, and include one concrete suggestion for how they could rewrite the first sentence.
===
Here's a SQL query that's been really slow on our Postgres database (the orders table has about 40 million rows). Can you suggest how to speed it up?

SELECT c.name, COUNT(o.id) AS order_count, SUM(o.total) AS revenue
FROM customers c
LEFT JOIN orders o ON o.customer_id = c.id
WHERE o.created_at >= NOW() - INTERVAL '90 days'
  AND c.country = 'DE'
GROUP BY c.name
ORDER BY revenue DESC
LIMIT 50;

We have an index on orders(customer_id) and one on customers(country). The EXPLAIN output shows a sequential scan on orders and a hash join. It takes around 40 seconds. I'm also not sure whether the LEFT JOIN is doing what I think, because customers without recent orders don't show up at all. Could you explain that too? We're on Postgres 15. I'd prefer solutions that don't require changing the application code much, but adding indexes or a materialised view is fine.
===
Could you help me write a toast for my sister's wedding? Some details:
- Her name is Maya, her husband is Daniel.
- They met at a pub quiz where they were on rival teams, and Daniel's team won because Maya got a question about penguins wrong (she still insists she was right).
- Maya is a paediatric nurse, very caring, terrible at cooking.
- Daniel is a quiet engineer who makes amazing bread and has taught Maya to make exactly one dish, a lasagne, which she now makes for every family event.
- I'm her older brother and we used to fight constantly as kids but now we're close.
- Our dad passed away three years ago and I want to mention him briefly but not make it too sad.
I'd like it to be around 3 minutes when spoken, funny but with a heartfelt ending. Please avoid anything that might embarrass the grandparents. British English please, since the wedding is in Manchester.
===
I'm writing the instructions for a small internal tool and I need them to be clearer. Here's my draft; please rewrite it for non-technical staff:

"To use the expense uploader, first make sure you're on VPN otherwise it won't connect to the backend. Then go to the uploader URL (bookmarked in the shared drive). You need to drag the receipt files in (PDF or JPG, max 10MB each, others are rejected silently which is a known bug). Fill in the cost centre, which is the 4 digit code from your manager, NOT the 6 digit project code, people always mix those up. Hit submit. If it says 'pending', that's normal, finance approve manually on Thursdays. If it says 'error 502' try again after 5 mins. Don't upload the same receipt twice, it creates duplicates that finance have to delete by hand and they get annoyed."

Please keep all the important warnings, format it as numbered steps with a short troubleshooting section, and make the tone friendly.
===
This is a prompt template I'm using for a summarisation feature in our note-taking app. Can you tell me if any of the rules conflict or are likely to confuse the model?

"You are a summarisation assistant. Rules: 1) Always respond in valid JSON with keys title, summary, bullets. 2) Never apologise and never say you are an AI. 3) Never refuse to summarise; if the note is empty, return an empty summary. 4) The summary must be under 60 words. 5) Bullets must be at most five items. 6) Preserve names, dates and numbers exactly. 7) Do not add information that is not in the note. 8) Write in the same language as the note. 9) If the note contains a to-do list, put each to-do as a bullet starting with a verb."

I'm worried that rule 3 and rule 7 might clash when the note is very short, and I don't know how the model should handle notes in mixed languages. Suggest a revised version.
===
I need help debugging a React component. When I type in the input, the cursor jumps to the end on every keystroke. Here's the code:

function NameField({ value, onChange }) {
  const [local, setLocal] = useState(value);
  useEffect(() => { setLocal(value.trim()); }, [value]);
  return (
    <input
      value={local}
      onChange={e => { setLocal(e.target.value); onChange(e.target.value.toUpperCase()); }}
    />
  );
}

The parent stores the value in state and passes it back down. It works fine if I remove the toUpperCase, but we need names stored in uppercase. I suspect the useEffect is fighting with the local state, but I'm not sure what the idiomatic fix is. Should I keep the display value separate from the stored value, or use a CSS text-transform? Also, the trim in the effect was added by a colleague to remove trailing spaces; is there a better place for that? Please show the corrected component.
===
Can you turn these rough notes into a friendly newsletter paragraph for our neighbourhood association? Keep it under 200 words and make it sound upbeat.

Notes: summer fair on 13 July, 11am–4pm, in Alder Park. Need volunteers for the cake stall (2-hour shifts) and for setting up tables at 9am. Dog show is back after 3 years, categories: waggiest tail, best trick, dog most like its owner. Entry £2, all proceeds to the community garden. Last year we raised £1,340. Parking is limited so please walk or cycle if you can. Bouncy castle for kids, under-12s only, thanks to Hargreaves Builders for sponsoring it. Rain plan: move into the church hall, but the dog show would be cancelled. Contact Ruth on 07700 900123 or at the Tuesday coffee morning to volunteer.

Please end with a line encouraging new residents to come along and say hello.
===
I'm preparing for a job interview for a project manager role and I've written an answer to "Tell me about a time you handled conflict in a team". Could you improve it using the STAR method and make it more concise?

"So in my last job we had a situation where two senior developers disagreed about whether to rewrite the payment module or keep patching it. It went on for weeks and it was slowing everything down and people were taking sides. I decided to get them in a room together and I asked each of them to write down their concerns and what success would look like. It turned out that they both cared about reliability but had different ideas about risk. We agreed to do a two-week spike to test the rewrite on one small part. The spike showed the rewrite was feasible but would take longer than planned, so we agreed to phase it. Both of them were happy in the end and the project finished only two weeks late, which was better than expected."

Aim for about 150 words and make the result sound measurable.
===
Here's the intro to my travel blog post. Could you edit it for flow and cut about a third without losing the personality?

"So, I'd always wanted to go to Iceland. Like, always. Ever since I was a kid and saw a documentary about volcanoes on a rainy Sunday afternoon, I've been obsessed with the idea of a place where the ground literally steams and the sun doesn't set in summer. And finally, after years of saying 'next year', I actually booked the ticket. I went in June, which, if you don't know, means basically 24 hours of daylight, which sounds fun until you're trying to sleep at 2am and it's as bright as lunchtime. I rented a tiny car, which I named Björk obviously, and drove the whole Ring Road in ten days, which everyone told me was too fast, and they were kind of right, but also kind of wrong, and I'll explain why. This post is about the first three days, from Reykjavík to Höfn, and all the waterfalls, sheep, and questionable petrol-station hot dogs in between."
===
I'm writing a cover letter for a junior graphic designer role at a small branding agency called North & Pine. Could you help me make this draft stronger?

"Dear Hiring Manager, I am writing to apply for the Junior Graphic Designer role. I recently graduated with a degree in Visual Communication from Falmouth University. During my studies I did lots of projects including branding for a local café, posters for a film festival and a zine about sustainable fashion. I am good at Adobe Illustrator, Photoshop and InDesign and I am learning Figma. I really like North & Pine's work especially the rebrand for the Highland Distillery. I think I would be a good fit because I am creative and hard-working and I love branding. Thank you for your time. Kind regards, Aisha Rahman"

I'd like it to be more specific and confident, under 250 words, and to mention that I did a 3-month internship at a print studio where I prepared files for print. Please don't make it sound overly formal.
===
I run a small bakery and I'd like a weekly schedule for my three staff. Constraints:
- We're open Tuesday to Sunday, 7am to 3pm. Closed Monday.
- Baking starts at 4am, so someone must be in from 4am to 11am every open day (the baker shift).
- The counter needs two people from 7am to 10am (the rush) and one person from 10am to 3pm.
- Amira can bake and do counter; she wants no more than 35 hours.
- Jonah can only do counter and can't work Sundays.
- Lucia can bake and do counter, wants at least 30 hours, and prefers early shifts.
- I (the owner) can cover up to 15 hours, preferably counter, and I want Saturday afternoon off.
- Nobody should work more than 5 days.
Could you propose a schedule in a table, show each person's total hours, and point out if the constraints can't all be met? If they can't, suggest the smallest change that would make it work.
===
Below is a paragraph from my thesis introduction. My supervisor says it's too long-winded. Could you tighten it while keeping the academic tone and all the citations?

"It has been widely argued in the literature over the course of the last several decades that urban green spaces may have a number of potentially beneficial effects on the mental health and wellbeing of residents who live in close proximity to them (Kaplan, 1995; Hartig et al., 2014; Markevych et al., 2017). However, it is also the case that there is a considerable degree of heterogeneity in the findings of the studies that have been conducted on this topic, with some studies finding strong associations and others finding weak or even null associations (Gascon et al., 2015). One possible reason for this heterogeneity that has been suggested by a number of authors is that the quality of green space, rather than simply its quantity, may be an important factor that has often not been adequately taken into account in previous research (Zhang et al., 2021)."
===
I'd like help designing a beginner's 8-week running plan. Background: I'm 42, I walk about 30 minutes a day but haven't run since school. I have a slightly dodgy left knee (no injury, just gets stiff). My goal is to run 5 km without stopping by the end of the plan, and then maybe sign up for a local parkrun. I can train three times a week, ideally Tuesday, Thursday and Saturday, and I'd prefer sessions of no more than 40 minutes including warm-up. I have access to a park with a flat 1.5 km loop and a gym with a treadmill. Could you lay out the plan week by week in a table, with warm-up and cool-down suggestions, and include a couple of simple strength exercises that might help my knee? Also, what signs should tell me to slow down or see a physio? Please keep the language encouraging; I'm a bit nervous about starting.
===
My team uses this checklist for code reviews and I think it's too long for people to actually use. Could you condense it into the 10 most important points and group them?

1. Does the code compile? 2. Are there tests? 3. Do the tests pass? 4. Are variable names clear? 5. Are functions short? 6. Is there duplicated code? 7. Are errors handled? 8. Are there any hard-coded secrets? 9. Is user input validated? 10. Are SQL queries parameterised? 11. Is logging appropriate (no personal data)? 12. Are comments up to date? 13. Is the public API documented? 14. Is the change backward compatible? 15. Are database migrations reversible? 16. Are feature flags used for risky changes? 17. Has performance been considered for large inputs? 18. Are dependencies pinned? 19. Are new dependencies licensed appropriately? 20. Does the UI meet accessibility guidelines? 21. Are there translations for new strings? 22. Has the changelog been updated? 23. Does the PR description explain why?

Please explain briefly why you kept or dropped the items you did.
===
You are going to help me as a writing assistant for my fantasy novel. Rules for this session: always stay in British English, never rewrite more than the paragraph I give you, never add new plot events, and always keep my characters' names exactly as written. If something in my paragraph is unclear, ask me one question at the end rather than guessing. Don't apologise or pad your replies; just give the edited paragraph and up to three short notes. Here's the first paragraph:

"Elowen drew her cloak tighter as the wind come down off the fells, and she thought of her brother Tamsin who had gone into the mountains three winters past and not came back. The village said he was dead. Elowen did not believe the village. In her pack was his knife, the one with the antler handle, that she had found on the doorstep the morning after the first snow, and she had told no one about it, not even her mother, who had stopped speaking his name."
===
Could you help me plan a week of dinners for a family of four on a budget of about £60? Details: two adults, two kids (7 and 10). The 10-year-old is vegetarian and the 7-year-old won't eat anything spicy or anything with "bits" in sauces. I have a slow cooker and an air fryer but not much time on weekdays (30 minutes max Monday to Thursday, more at weekends). I'd like at least two meals that make leftovers for lunches. We're in the UK, so I shop at Aldi or Tesco. Please give me a 7-day plan, a combined shopping list grouped by supermarket section with rough prices, and a short prep plan for Sunday that would make the weekdays easier. It would also be great if one meal is something the kids can help cook. No fish on Fridays is needed, we're not religious, but my partner doesn't like salmon.
===
I wrote this function to validate UK postcodes and I'd like a review. Is the regex right, and is the code idiomatic?

import re

POSTCODE = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]? ?[0-9][A-Z]{2}$")

def is_valid_postcode(s):
    if s == None:
        return False
    s = s.upper()
    if POSTCODE.match(s):
        return True
    else:
        return False

def normalise(s):
    s = s.upper().replace(" ", "")
    return s[:-3] + " " + s[-3:]

Some things I'm unsure about: should normalise() also validate? What happens with leading/trailing spaces? I've heard that some real postcodes (like GIR 0AA) don't match the general pattern. I'd like type hints added and some pytest tests that cover edge cases. Please keep it compatible with Python 3.9. For context, this runs in a Django form for a charity's volunteer sign-up page, so the error messages need to be friendly, and I'd rather not pull in a third-party library just for this if the standard library is enough.
===
Please summarise this customer feedback into the top three themes, with a representative quote for each and a suggested action.

1. "Delivery was fast but the box was crushed."
2. "Love the product, but the app keeps logging me out."
3. "Customer service took 4 days to reply."
4. "App crashes when I try to reorder."
5. "Packaging was damaged, one item broken."
6. "Great quality, will buy again."
7. "Waited nearly a week for a response to my email."
8. "The login thing is so annoying, every single day."
9. "Box arrived soaked, the cardboard fell apart."
10. "Support was helpful once they finally answered."
11. "Can't save my address in the app."
12. "Excellent, arrived early."

Format as a short report with headings, and add a line at the end estimating what percentage of comments were positive overall.
===
I'm a volunteer coordinator for a food bank and I need to write a message to our volunteers about a change in procedure. Could you make this clearer and kinder?

"From next Monday ALL volunteers must sign in on the tablet at the front desk, no exceptions. We've had problems with people not signing in and then we don't know who was here, which is a problem for insurance. Also do not give extra food to clients even if they ask, everyone gets the same parcel, this is not optional. If a client is upset, get a shift lead. Don't argue with them. Also please stop parking in the disabled bay, it has happened three times this month. Thanks."

I want to keep all the rules but explain the reasons, thank people for their time, and make the tone warm. It will go out by email and be printed on the noticeboard, so it should work in both formats. Under 250 words please.
===
I'd like to create a study guide for my biology exam on the cardiovascular system. Here's what the syllabus says we need to know:
- structure of the heart (four chambers, valves, major vessels)
- the cardiac cycle (systole, diastole) and how valves open and close
- how heart rate is controlled (SA node, AV node, bundle of His, Purkinje fibres; role of the autonomic nervous system)
- blood vessels: arteries, veins, capillaries, and how their structure relates to function
- blood pressure and how it's measured
- tissue fluid formation
- interpreting ECG traces (normal, tachycardia, bradycardia, fibrillation)
Can you turn this into a study guide with short explanations, a simple diagram description for the heart, five practice questions with answers at the end, and a mnemonic for the order of the conduction system? I'm studying for A-level (UK), so please pitch it at that level.
===
Here is the README intro for my open-source project. Can you make it more welcoming for first-time contributors?

"tinyq is a job queue. It uses Redis. It supports retries, delays and priorities. Install with pip. See docs for usage. PRs welcome but must have tests and pass lint. We don't accept PRs that add dependencies. Issues without reproduction steps will be closed. Don't ask for features in issues, use discussions."

I'd like to keep the rules about tests, dependencies and reproduction steps, because they genuinely save us time, but I don't want it to sound hostile. Could you also suggest a short "Good first issues" section and a code-of-conduct line? Keep it in Markdown and under 250 words. We're three maintainers doing this in our spare time, so anything that helps newcomers help themselves is a win.
===
I'm trying to understand this paragraph from a contract for a freelance design job. Could you explain in plain English what it means for me and whether anything looks unusual?

"7.2 Intellectual Property. Upon receipt of full payment, the Designer assigns to the Client all right, title and interest in the Final Deliverables, including all copyrights therein. The Designer retains ownership of all preliminary concepts, sketches and unused designs ('Preliminary Works') and grants the Client no rights in the Preliminary Works. The Designer may display the Final Deliverables in the Designer's portfolio and promotional materials, unless the Client requests otherwise in writing within 30 days of final delivery. The Client warrants that any materials it supplies to the Designer do not infringe the rights of any third party and shall indemnify the Designer against any claims arising from such materials."

I'm the designer. I know you're not a lawyer, I just want to understand it before I sign.
===
I'm setting up a home network for my parents and I want to write them simple instructions. Here's what I've got; can you rewrite it so a 70-year-old who isn't confident with technology can follow it?

"If the internet stops working: 1. Check the router lights. If the 'Internet' light is red or off, power cycle the router by unplugging it for 30s. 2. If that doesn't work check the ONT (white box on the wall) - if the PON light is red call the ISP, number on the sticker. 3. If the wifi works but one device doesn't, forget the network on that device and reconnect with the password on the card in the drawer. 4. Don't press the reset button on the router, it wipes the config. 5. If all else fails, call me."

Please use short sentences, avoid jargon, and explain what each box looks like. Large-print friendly formatting would be great too.
===
Can you help me write a short speech for my grandad's 90th birthday? He was a fisherman in Whitby for 50 years, he's famous in the family for his terrible jokes (his favourite is "what do you call a fish with no eyes? A fsh"), and he taught all of us grandchildren to swim in the freezing North Sea. He lost my gran two years ago and has been quieter since, but he loves having everyone round. He still makes his own kippers. I want the speech to be about two minutes long, with a couple of gentle jokes, a mention of gran that's warm rather than sad, and a toast at the end. I'm 19 and a bit nervous about public speaking, so please keep the sentences easy to say out loud. The family is from Yorkshire, so a bit of local flavour would be lovely, but nothing that sounds forced.
===
Here's a bash script I use to back up my photos, but it sometimes fails silently. Could you make it more robust?

#!/bin/bash
SRC=/home/sam/Pictures
DEST=/mnt/backup/photos
DATE=$(date +%Y-%m-%d)
mkdir $DEST/$DATE
cp -r $SRC/* $DEST/$DATE
echo "done"

Things I'd like: exit on error, a check that the backup drive is actually mounted before copying, handling of filenames with spaces, only copying files that have changed since the last backup (maybe rsync?), keeping only the last 7 daily backups, and logging to a file with timestamps. I run it from cron every night at 2am. Please explain each change briefly, because I want to understand it, not just paste it. The backup drive is a USB disk formatted as ext4, and the machine is an old laptop running Debian 12. Last month I discovered that the backups had been empty for two weeks because the drive hadn't mounted after a reboot, so the mount check is the part I care about most.
===
I'm writing a children's picture book and I'd love feedback on the text. It's for ages 3–5. Here it is:

"Pip the penguin did not like the cold. 'Brrr,' said Pip. All the other penguins slid on the ice. Whee! But Pip stayed in the igloo with three scarves. One day, a snowstorm came. Swoosh! The little penguins could not find their way home. Pip looked out of the window. Pip saw the little penguins. Pip put on four scarves, then five, then six. Pip waddled out into the storm. 'Follow my scarves!' called Pip. The long, long scarves made a path all the way home. Now Pip still does not like the cold. But Pip likes friends very much."

Is the vocabulary right for the age group? Does the pacing work across 12 spreads? And could you suggest a better title than "Pip and the Scarves"?
===
I'd like a polite but firm complaint letter to my energy supplier. Facts:
- Account number 883201456.
- I switched to them on 1 February and gave a meter reading of 12,430 that day.
- My first bill (March) used an estimated opening reading of 11,900, so I've been charged for 530 kWh I didn't use with them, about £140.
- I called on 20 March and was told it would be fixed within 10 working days. It wasn't.
- I emailed on 8 April with a photo of the meter from 1 February. No reply.
- I'd like the bill corrected, the overcharge refunded or credited, and £30 goodwill compensation for the time spent.
- If it isn't resolved within 8 weeks of my first complaint, I understand I can go to the Energy Ombudsman.
Please write the letter in a calm tone, include the dates, and keep it to one page.
===
Here's a Dockerfile for our Node app. The image is 1.2 GB and builds take forever. Can you help optimise it?

FROM node:20
WORKDIR /app
COPY . .
RUN npm install
RUN npm run build
EXPOSE 3000
CMD ["npm", "start"]

The app is a Next.js site. We deploy to a small VM with limited disk. I've heard about multi-stage builds and alpine images but I'm not sure about compatibility with some native modules we use (sharp for image processing). We also have a .env file in the repo root that I think is being copied into the image, which probably isn't great. Could you rewrite the Dockerfile, add a .dockerignore, and explain roughly how much smaller the image should get?
===
I'm planning a 10-day trip to Vietnam in March with my partner. We like food, walking, history and a bit of nature, but not extreme hiking. We fly into Hanoi and out of Ho Chi Minh City. Our budget is mid-range (around $120 per day for both of us, excluding flights). We'd like one or two nights somewhere quiet by the sea, and we're curious about Hoi An and Ha Long Bay but we've heard Ha Long can be touristy. Neither of us speaks Vietnamese. Could you suggest an itinerary with how many nights in each place, how to travel between them (train, bus or domestic flight), and two or three must-try dishes in each region? Also, any etiquette tips, and what the weather will be like in March in the north versus the south? Please present it as a day-by-day table followed by a short list of practical tips.
===
Can you help me make this LinkedIn post less cringe? I want to announce that I'm leaving my job.

"After 6 incredible years, 3 promotions, 2 office moves and 1 global pandemic, today is my LAST DAY at Brightwave!!! 🚀🚀🚀 I am so unbelievably grateful to every single person who has been part of this journey. I have learned SO much and grown SO much. When I joined I was a shy junior analyst who didn't know what a pivot table was, and now I'm leaving as a Senior Manager leading a team of 9 amazing humans. I'm not going to lie, I cried a bit today. 😭 But I'm also SO excited to announce that I'm starting a new chapter as Head of Analytics at Lumen Health!!! Watch this space!!! #grateful #newbeginnings #blessed #leadership"

I'd like to keep the gratitude and the news, but make it sound more natural and less over the top. Maybe 100 words.
===
Please help me plan a lesson for my Year 8 class (ages 12–13) on the causes of the English Civil War. The lesson is 60 minutes. The class is mixed ability, with a few students who have dyslexia and one who is new to English. I'd like a starter activity (5–10 minutes), a main activity where students sort causes into long-term and short-term and into political, religious and financial categories, and a plenary that checks understanding. The key causes I want to cover are: Charles I's belief in the divine right of kings, the Personal Rule, Ship Money, Laud's religious reforms, the Scottish rebellion, the Irish rebellion of 1641, the Grand Remonstrance, and the attempt to arrest the Five Members. Please include suggestions for differentiation and one homework idea. Keep the resources simple; I have a whiteboard, a projector and card sorts.
===
My landlord sent me this message and I'm not sure how to respond. Can you help me draft a reply that's polite but protects my rights? I'm in England on an assured shorthold tenancy.

"Hi Tom, just to let you know I'll be coming round on Saturday at 10 to show the flat to some people who might rent it after you. Also I've noticed the garden is looking a bit overgrown, please sort it before then. And I'm going to have to increase the rent by £150 from next month because of interest rates, sorry! Cheers, Dave"

My tenancy ends in four months and I haven't given notice yet; I was planning to stay. My contract says the landlord must give 24 hours' written notice for visits and that rent reviews happen once a year in September. The garden maintenance is listed as my responsibility, fair enough. I want to keep a good relationship with him.
===
I'd like help writing clear alt text for the images in our museum's online exhibition about Victorian toys. Here are descriptions of five images from our curator's notes:
1. A wooden Noah's Ark with about 30 hand-painted animals in pairs, the ark's roof lifts off; painted red and green; c.1870.
2. A porcelain doll with blonde ringlets, a blue silk dress and one missing shoe; slight crack on the left cheek.
3. A tin clockwork mouse, key in its side, grey paint worn away on the back.
4. A zoetrope on a stand with a paper strip showing a galloping horse.
5. A child's sampler embroidered with the alphabet, numbers 1–10 and "Mary Hale aged 9, 1861".
Each alt text should be under 125 characters where possible, describe what matters for understanding the exhibition, and avoid phrases like "image of". Could you also suggest which ones need a longer description?
===
Our startup's onboarding email currently reads like this, and our open rate is fine but nobody clicks the button. Can you rewrite it?

"Subject: Welcome to Tallyo
Hi {first_name},
Thank you for signing up for Tallyo. Tallyo is an invoicing tool for freelancers. With Tallyo you can create invoices, send reminders, track payments and export reports for your accountant. We support 12 currencies and integrate with Stripe and PayPal. To get started, log in and complete your profile, then add your first client, then create an invoice. If you have any questions, please reply to this email. We hope you enjoy using Tallyo.
[Log in]
The Tallyo Team"

I'd like a clearer single call to action (creating the first invoice), a friendlier tone, and a subject line that's more compelling. Please give me two alternatives and explain what you changed.
===
Here's my attempt at a villanelle. I know the form has strict rules (19 lines, two refrains, ABA rhyme scheme). Can you check whether I've followed them and suggest improvements without rewriting the whole thing?

"The tide comes in and takes the sand away,
and I stand watching where the water goes.
I never learned the words I meant to say.

My father built a boat one summer day;
he painted her the colour of a rose.
The tide comes in and takes the sand away.

He taught me knots, and how the gulls would play
above the harbour when the north wind blows.
I never learned the words I meant to say.

Now I am older and my hair is grey,
and still the river to the ocean flows.
The tide comes in and takes the sand away."

I've only written four stanzas so far. Could you also suggest what the remaining stanzas might be about?
===
I'm organising a charity quiz night and I need six rounds of eight questions each, with answers. Themes: general knowledge, geography, music from the 80s and 90s, food and drink, science and nature, and a picture-free "famous firsts" round. The audience is mostly adults aged 30 to 70 in the UK, so a mix of difficulty is good: a couple of easy ones per round, a couple of hard ones, and the rest in between. Please avoid anything controversial or political, and avoid questions whose answers might have changed recently. Could you also add a tie-breaker question with a numerical answer, and a short script for the quizmaster to introduce the evening? Put the answers in a separate section at the end so I can print the questions without them.
===
Could you help me turn this rambling voice memo transcript into a tidy to-do list, grouped by where I need to be?

"Okay so tomorrow I need to, um, pick up the dry cleaning, that's on the high street, and while I'm there get a birthday card for Leo, his birthday is Saturday. Also I need to call the dentist, I think they close at five, to move my appointment. Oh and the car needs petrol, and the tyre pressure light was on, so check that at the garage. Email Jenny about the budget spreadsheet, she needs it by Thursday, actually I should do that first thing. Buy milk, bread, and something for dinner, maybe the fish counter at the big Sainsbury's. And I should really book the vet for the cat's vaccination, that's overdue. Oh and return the library books, they're in the boot already."

Please add rough times where they matter and flag anything urgent.
===
I'm writing product copy for a handmade ceramics shop and I'd like it to sound warm and specific rather than generic. Here are the details for one product:

- Name: Harbour Mug
- Handmade on the wheel in our Cornwall studio
- Glaze: speckled white inside, deep blue outside, runs a bit at the rim so every mug is slightly different
- Holds 350 ml
- Dishwasher safe, but hand-washing keeps the glaze looking newer for longer
- Not microwave safe because of the iron speckles
- Each mug takes about 3 weeks from clay to kiln
- Price £28

Could you write a 100-word product description and a 20-word version for Instagram? Please avoid clichés like "perfect for your morning coffee" and "elevate your everyday".
===
We're migrating from a spreadsheet to a small database for our school library. Here's the current spreadsheet structure, with example rows:

Title | Author | ISBN | Copies | Borrowed by | Borrowed date | Due date | Class
"Holes" | Louis Sachar | 9780440414803 | 3 | Aisha K, Ben T | 02/05, 03/05 | 16/05, 17/05 | 7B, 7C
"Wonder" | R. J. Palacio | 9780552565974 | 2 | | | |

As you can see, when more than one copy is borrowed we put multiple names in one cell, which is a mess. Could you propose a simple relational schema (tables, columns, keys), explain why it's better, and show how the example rows would look in it? We'd probably use SQLite or maybe Airtable. Please keep the explanation understandable for a librarian who isn't a programmer.
""")
